"""Importing TensorFlow without its start-up log lines on a command's stderr.

TensorFlow 2.21 writes a few C++ log lines (oneDNN, CUDA stubs) to file
descriptor 2 while it is imported, before its logging honours
``TF_CPP_MIN_LOG_LEVEL``. A command whose contract is "one line on stderr for
bad input" cannot have them: :func:`import_tensorflow` imports TensorFlow
with descriptor 2 captured, drops the information and warning lines that the
log level asks to hide, and writes back everything else (errors, and any
Python traceback of a failed import).

The project's models, pipelines and commands are TensorFlow's (``tf.data``,
``tf.distribute``, SavedModel export): a command started with another Keras
backend (``KERAS_BACKEND=jax``, or ``"backend"`` in ``keras.json``) stops
with one line saying so (:class:`BackendError`) instead of a
``ModuleNotFoundError`` deep inside an import.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path

_HEADER = re.compile(r"^[IWEF]\d{4} ")
_HIDDEN = re.compile(r"^(?:[IW]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def _kept(text: str, level: int = 1) -> list[str]:
    """The lines of ``text`` that are not information or warning records (nor their
    continuation lines), nor error records at ``level`` 3."""
    kept, hiding = [], False
    for line in text.splitlines():
        if _HEADER.match(line) or _HIDDEN.match(line):
            hiding = bool(_HIDDEN.match(line)) or (level >= 3 and line.startswith("E"))
        if not hiding:
            kept.append(line)
    return kept


class BackendError(ValueError):
    """Keras is set to a backend other than TensorFlow."""


def keras_backend() -> tuple[str, str]:
    """The backend Keras will load and where that choice comes from, as Keras decides it:
    ``KERAS_BACKEND``, else ``keras.json`` in ``KERAS_HOME`` (``~/.keras``), else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    home = Path(os.environ.get("KERAS_HOME") or Path(os.path.expanduser("~")) / ".keras")
    try:
        backend = json.loads((home / "keras.json").read_text(encoding="utf-8")).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return (backend, str(home / "keras.json")) if isinstance(backend, str) else ("tensorflow", "")


def check_backend() -> None:
    """Raise :class:`BackendError` unless Keras will run on TensorFlow."""
    backend, source = keras_backend()
    if backend != "tensorflow":
        where = f"KERAS_BACKEND={backend}" if source == "KERAS_BACKEND" else f"backend {backend!r} in {source}"
        raise BackendError(f"this command needs Keras's TensorFlow backend. Received: {where}; "
                           "unset it or set KERAS_BACKEND=tensorflow")


@contextlib.contextmanager
def _ctrl_c_after():
    """Hold Ctrl-C back until the block ends, then raise it: some of TensorFlow's import code
    catches every exception, a ``KeyboardInterrupt`` included, and goes on as if nothing
    happened, so a Ctrl-C while it loads would be lost. Only Python's own Ctrl-C handler is
    stood in for (an ignored or custom one is left alone), and only the main thread handles
    signals."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def import_tensorflow(command: bool = True) -> None:
    """Import TensorFlow once, with the start-up lines ``TF_CPP_MIN_LOG_LEVEL`` hides dropped.

    A ``command`` checks the backend (:func:`check_backend`) and sets the
    level to 3 unless the user set it, for the whole run: TensorFlow's C++
    "errors" on a machine without a GPU (a failed ``cuInit``, oneDNN's
    integer fall-back) are not the user's, and real failures reach Python as
    exceptions; a library import (``command=False``) leaves the
    environment alone and drops the start-up information lines unless the
    user asked for them with a level of 0. With a level below 1 nothing is
    captured.
    """
    if command:
        check_backend()
    if "tensorflow" in sys.modules:
        return
    if command:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")
    if not level.isdigit() or int(level) < 1:
        with _ctrl_c_after():
            importlib.import_module("tensorflow")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture, _ctrl_c_after():
        os.dup2(capture.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = _kept(capture.read().decode("utf-8", "replace"), int(level))
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
