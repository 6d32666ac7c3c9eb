"""Keras callbacks every training phase uses: best checkpoint, CSV log, NaN stop, timing."""
from __future__ import annotations

import time
from pathlib import Path

import keras


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of each epoch) to the history."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def standard_callbacks(folder: Path, phase: str, monitor: str) -> list[keras.callbacks.Callback]:
    """Best-weights checkpoint on ``monitor``, ``history_<phase>.csv``, NaN stop, timing."""
    return [
        EpochTimer(),
        keras.callbacks.ModelCheckpoint(
            str(best_weights_path(folder, phase)),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.CSVLogger(str(Path(folder) / f"history_{phase}.csv")),
        keras.callbacks.TerminateOnNaN(),
    ]


def best_weights_path(folder: Path, phase: str) -> Path:
    return Path(folder) / f".{phase}.best.weights.h5"


def restore_best(model: keras.Model, folder: Path, phase: str) -> bool:
    """Load the best checkpoint of ``phase`` into ``model`` and remove the file."""
    best = best_weights_path(folder, phase)
    if not best.exists():
        return False
    model.load_weights(str(best))
    best.unlink()
    return True
