"""The per-epoch training state a killed run resumes from, written so no kill can tear it.

Keras's :class:`keras.callbacks.BackupAndRestore` writes its weights file in
place: a kill, Ctrl-C or a full disk during that write leaves a valid but
incomplete HDF5 file that ``load_weights`` refuses ("objects could not be
loaded"), and its fall-back to the previous copy only catches ``OSError``.
:class:`EpochBackup` keeps the same state (weights, optimizer moments and
step, the number of completed epochs) as one folder per epoch:

- epoch ``N`` is written into ``.epoch-N.partial/`` (``model.weights.h5`` and
  ``state.json``), each file flushed to disk with ``fsync``;
- the folder is renamed to ``epoch-N`` (a rename is atomic on one file
  system), and only then are older epochs removed, so the previous good copy
  stays until the new one is complete;
- on restore the newest ``epoch-N`` that loads is used; one that does not
  (a disk that lied about ``fsync``) falls back to the one before.

A backup folder written by Keras's own callback (``latest.weights.h5``,
``training_metadata.json`` and their ``.bkp`` copies) is still restored, so
runs started before this format resume.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import keras
import numpy as np

from csa_keras.utils.files import check_space, read_json, sync_file, sync_folder

_EPOCH = re.compile(r"^epoch-(\d+)$")
WEIGHTS = "model.weights.h5"
STATE = "state.json"


def _epochs(folder: Path) -> list[tuple[int, Path]]:
    """The complete epoch folders of ``folder``, newest first."""
    found = []
    if folder.is_dir():
        for child in folder.iterdir():
            match = _EPOCH.match(child.name)
            if match and child.is_dir() and (child / WEIGHTS).is_file() and (child / STATE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found, reverse=True)


def _read_epoch(path: Path) -> int | None:
    try:
        return int(read_json(path, limit=1 << 16)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _legacy(folder: Path) -> list[tuple[int, Path]]:
    """Keras ``BackupAndRestore`` state: (epochs, weights file), latest copy first."""
    found = []
    for suffix in ("", ".bkp"):
        weights = folder / f"latest.weights.h5{suffix}"
        epoch = _read_epoch(folder / f"training_metadata.json{suffix}")
        if weights.is_file() and epoch is not None:
            found.append((epoch, weights))
    return found


def backed_up_epochs(folder: str | os.PathLike) -> int:
    """The number of completed epochs the newest backup in ``folder`` holds (0 without one)."""
    folder = Path(folder)
    for _, path in _epochs(folder):
        epoch = _read_epoch(path / STATE)
        if epoch is not None:
            return epoch
    legacy = _legacy(folder)
    return legacy[0][0] if legacy else 0


def state_bytes(model: keras.Model) -> int:
    """An upper estimate of the bytes ``model.save_weights`` writes: every weight and optimizer
    variable, plus a tenth and a mebibyte for the HDF5 structure."""
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    data = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return int(data * 1.1) + 2**20


def save_training_state(model: keras.Model, path: str | os.PathLike, what: str) -> None:
    """``model.save_weights(path)`` on a disk checked to have room for it first.

    ``h5py`` does not survive a failed write: after "No space left on
    device" it can crash the interpreter (a segmentation fault) while
    cleaning up. The check turns a full disk into one ``OSError`` naming the
    folder before HDF5 is touched; a write that fails anyway removes its
    partial file.
    """
    path = Path(path)
    check_space(path.parent, state_bytes(model), what)
    try:
        model.save_weights(str(path))
    except OSError as error:
        path.unlink(missing_ok=True)
        raise OSError(error.errno, str(error).splitlines()[0], str(path)) from None


def load_training_state(model: keras.Model, path: str | os.PathLike) -> None:
    """``model.load_weights`` of a file that also holds optimizer state.

    The optimizer is built first (as ``BackupAndRestore`` does), so its
    saved moments and step count are restored rather than skipped.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_variables)
    model.load_weights(str(path))


class EpochBackup(keras.callbacks.Callback):
    """Backs up the model and optimizer after every epoch into ``folder`` and restores them.

    The resumable half of :class:`~csa_keras.training.callbacks.TrainingPhase`;
    the module docstring gives the format and why it replaces
    ``BackupAndRestore``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__()
        self.folder = Path(folder)

    def on_train_begin(self, logs=None):
        candidates = [(epoch, path / WEIGHTS) for epoch, path in _epochs(self.folder)]
        candidates = [(_read_epoch(w.parent / STATE), w) for _, w in candidates] + _legacy(self.folder)
        failures = []
        for epoch, weights in candidates:
            if epoch is None:
                continue
            try:
                load_training_state(self.model, weights)
            except (OSError, ValueError) as error:
                failures.append(f"{weights}: {str(error).splitlines()[0] if str(error) else error!r}")
                continue
            self.model._initial_epoch = epoch  # what fit() starts from; BackupAndRestore sets it so too
            return
        if failures:
            raise ValueError(f"the training state in {self.folder} cannot be restored "
                             f"({failures[0]}); remove {self.folder} to train this phase again")

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    def save(self, epochs: int) -> Path:
        """Write the state after ``epochs`` completed epochs; returns its folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"epoch-{epochs}"
        partial = self.folder / f".epoch-{epochs}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        save_training_state(self.model, partial / WEIGHTS, f"the state after epoch {epochs}")
        sync_file(partial / WEIGHTS)
        (partial / STATE).write_text(json.dumps({"epoch": epochs}), encoding="utf-8")
        sync_file(partial / STATE)
        sync_folder(partial)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        sync_folder(self.folder)
        for child in self.folder.iterdir():
            if child != final and (_EPOCH.match(child.name) or child.name.startswith(
                    (".epoch-", "latest.weights.h5", "training_metadata.json"))):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return final
