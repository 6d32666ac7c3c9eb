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

_HEADER = re.compile(r"^[IWEF]\d{4} ")
_HIDDEN = re.compile(r"^(?:[IW]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def _kept(text: str) -> list[str]:
    """The lines of ``text`` that are not information or warning records (nor their
    continuation lines)."""
    kept, hiding = [], False
    for line in text.splitlines():
        if _HEADER.match(line) or _HIDDEN.match(line):
            hiding = bool(_HIDDEN.match(line))
        if not hiding:
            kept.append(line)
    return kept


def import_tensorflow(command: bool = True) -> None:
    """Import TensorFlow once, with the start-up lines ``TF_CPP_MIN_LOG_LEVEL`` hides dropped.

    A ``command`` sets the level to 2 (errors only) unless the user set it,
    for the whole run; a library import (``command=False``) leaves the
    environment alone and drops the start-up information lines unless the
    user asked for them with a level of 0. With a level below 1 nothing is
    captured.
    """
    if "tensorflow" in sys.modules:
        return
    if command:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")
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
            kept = _kept(capture.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
