"""Importing TensorFlow without its start-up log lines on a command's stderr.

TensorFlow 2.21 writes a few C++ log lines (oneDNN, CUDA stubs) to file
descriptor 2 while it is imported, before its logging honours
``TF_CPP_MIN_LOG_LEVEL``. A command whose contract is "one line on stderr for
bad input" cannot have them: :func:`import_tensorflow` imports TensorFlow
with descriptor 2 captured, drops the information and warning lines that the
log level asks to hide, and writes back everything else (errors, and any
Python traceback of a failed import).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile

_HIDDEN = re.compile(r"^(?:[IW]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def import_tensorflow() -> None:
    """Import TensorFlow once, with the start-up lines ``TF_CPP_MIN_LOG_LEVEL`` hides dropped.

    The level defaults to 2 (errors only) for the commands; with a level
    below 1 nothing is captured.
    """
    if "tensorflow" in sys.modules:
        return
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not level.isdigit() or int(level) < 1:
        importlib.import_module("tensorflow")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if not _HIDDEN.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
