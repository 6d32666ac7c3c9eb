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

From Python the same holds without a call: importing :mod:`csa_keras`
installs :func:`quiet_tensorflow_import`, an import hook under which
TensorFlow, whoever imports it first (Keras, a model load, the user's own
``import tensorflow``), loads the way :func:`import_tensorflow` loads it for a
library. ``import csa_keras`` itself still imports no TensorFlow, and this
module imports nothing heavy until TensorFlow is imported.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from csa_keras.utils.interrupt import HeldInterrupt

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
"""TensorFlow's C++ log level (0 all, 1 no information, 2 no warnings, 3 no errors), read at import."""

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


@contextlib.contextmanager
def stderr_filtered(keep: Callable[[str], list[str]] | None = None) -> Iterator[None]:
    """File descriptor 2 captured for the block (C++ libraries write there, not to ``sys.stderr``),
    then the lines ``keep`` returns of what was written put back on stderr; ``None`` drops it all."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if keep is not None:
                capture.seek(0)
                kept = keep(capture.read().decode("utf-8", "replace"))
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")


class BackendError(ValueError):
    """A command cannot run on Keras's TensorFlow backend here: another backend is set, or the
    ``train`` extra (TensorFlow, Keras and the libraries of training and evaluation) is missing."""


TRAIN_EXTRA = ("tensorflow", "keras", "h5py", "sklearn", "scipy", "matplotlib", "filelock", "tf_keras_vis")
"""The modules the ``train`` extra installs: every command that runs Keras needs them."""


def check_train_extra() -> None:
    """Raise :class:`BackendError` naming the first module of :data:`TRAIN_EXTRA` not installed."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendError(f"this command needs the train extra ({missing[0]} is not installed): "
                           "pip install 'csa-keras[train]'")


def keras_backend() -> tuple[str, str]:
    """The backend Keras will load and where that choice comes from, as Keras decides it:
    ``KERAS_BACKEND``, else ``keras.json`` in ``KERAS_HOME`` (``~/.keras``), else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    import json

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


_loading = False
"""True while TensorFlow is being imported under :func:`_quiet_start`."""


@contextlib.contextmanager
def _quiet_start(command: bool):
    """The block that imports TensorFlow, its start-up lines dropped (:func:`import_tensorflow`).

    A library import with no level set by the user reads the commands' level
    3 while TensorFlow loads (TensorFlow keeps the level it read for the whole
    process), then takes the variable away again, so ``os.environ``, and the
    processes the user starts, are left as they were. Ctrl-C is held until the
    import ends (:class:`~csa_keras.utils.interrupt.HeldInterrupt`): some of
    TensorFlow's import code catches every exception, a ``KeyboardInterrupt``
    included, and goes on, so a Ctrl-C while it loads would be lost. Nested
    blocks do nothing.
    """
    global _loading
    if _loading:
        yield
        return
    set_here = not command and LOG_LEVEL_VARIABLE not in os.environ
    if command or set_here:
        os.environ.setdefault(LOG_LEVEL_VARIABLE, "3")
    level = os.environ.get(LOG_LEVEL_VARIABLE, "1")
    _loading = True
    try:
        if not level.isdigit() or int(level) < 1:
            with HeldInterrupt():
                yield
            return
        with stderr_filtered(lambda text: _kept(text, int(level))), HeldInterrupt():
            yield
    finally:
        _loading = False
        if set_here:
            os.environ.pop(LOG_LEVEL_VARIABLE, None)


def import_tensorflow(command: bool = True) -> None:
    """Import TensorFlow once, with the start-up lines ``TF_CPP_MIN_LOG_LEVEL`` hides dropped.

    A ``command`` checks the backend (:func:`check_backend`) and sets the
    level to 3 unless the user set it, for the whole run: TensorFlow's C++
    "errors" on a machine without a GPU (a failed ``cuInit``, oneDNN's
    bfloat16 and integer fall-backs) are not the user's, and real failures
    reach Python as exceptions. A library import (``command=False``) gives
    TensorFlow the same level 3 unless the user set one, but only while it
    loads: TensorFlow keeps that level for the process, and ``os.environ`` is
    left as it was. A level the user set is honoured either way; below 1
    nothing is captured.
    """
    if command:
        check_train_extra()
        check_backend()
    if "tensorflow" in sys.modules:
        return
    with _quiet_start(command):
        importlib.import_module("tensorflow")
    uninstall_quiet_import()


class _QuietLoader:
    """TensorFlow's own loader, its module run inside :func:`_quiet_start` (library rules)."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its own loader
        with _quiet_start(command=False):
            self.loader.exec_module(module)
        uninstall_quiet_import()


class _QuietTensorFlowFinder:
    """A ``sys.meta_path`` entry for ``tensorflow`` alone: the spec the other finders give,
    its loader wrapped in :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or _loading:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorFlowFinder()


def quiet_tensorflow_import() -> None:
    """Have the next import of TensorFlow, from anywhere in the process, load it as
    ``import_tensorflow(command=False)`` does. Nothing is imported; nothing happens when
    TensorFlow is imported already or the hook is in place. The package calls it on import."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall_quiet_import() -> None:
    """Take the hook of :func:`quiet_tensorflow_import` away (TensorFlow loads it once)."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
