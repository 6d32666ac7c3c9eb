"""Keras callbacks every training phase uses, and the state that lets a killed phase resume.

Every ``fit`` of both papers' training is a :class:`TrainingPhase`: a folder
of state (under the run directory's ``.backup/``) and the callbacks that keep
it, so that ``--resume`` continues a run killed at any moment from its last
completed epoch:

- ``backup/``: :class:`~csa_keras.training.backup.EpochBackup` (weights,
  optimizer state and epoch after every epoch, each epoch written to a
  folder of its own and renamed into place, the previous epoch's copy kept
  until the new one is complete);
- ``best.weights.h5``: the best epoch on the monitored quantity (a loss, or
  an accuracy with ties broken by the loss, :class:`SelectionScore`)
  (:class:`AtomicModelCheckpoint`, written to a temporary name and renamed);
- ``history.csv``: :class:`keras.callbacks.CSVLogger`, one row per completed
  epoch, appended to on resume so the history covers every epoch;
- ``last_epoch.json``: the logs of the latest epoch, written just before
  the backup (:class:`LastEpochLogs`);
- ``done.weights.h5``: the phase's result (the best epoch's weights and
  optimizer state) once ``fit`` has returned, so a resumed run reloads a
  finished phase instead of training it again.

At the end of an epoch the callbacks run in the order best checkpoint, last
logs, backup, CSV log, so an epoch counts as completed once its backup is
written and only then appears in the log. A kill before the backup loses the
epoch in progress (it is trained again); a kill between the backup and the
log, or in the middle of writing its row, loses nothing, because
:meth:`TrainingPhase.callbacks` writes that row again from
``last_epoch.json`` before the phase goes on.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import keras

from csa_keras.training.backup import EpochBackup, backed_up_epochs, load_training_state, state_bytes
from csa_keras.utils.files import MAX_CSV_BYTES, check_size, check_space, commit, read_json
from csa_keras.utils.interrupt import HeldInterrupt


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of each epoch) to the history."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class InterruptBetweenSteps(keras.callbacks.Callback):
    """Raises a Ctrl-C held by ``held`` (:class:`~csa_keras.utils.interrupt.HeldInterrupt`)
    at the end of a training or validation step, or of an epoch.

    Placed last in the callback list, so at the end of an epoch it runs after
    the checkpoint, the backup and the CSV row: an epoch whose last step had
    run when Ctrl-C came is kept whole.
    """

    def __init__(self, held: HeldInterrupt) -> None:
        super().__init__()
        self.held = held

    def on_train_batch_end(self, batch, logs=None):
        self.held.check()

    def on_test_batch_end(self, batch, logs=None):
        self.held.check()

    def on_epoch_end(self, epoch, logs=None):
        self.held.check()


class SelectionScore(keras.callbacks.Callback):
    """Adds ``name``: an accuracy with ties broken by the lower loss, for a best checkpoint.

    ``score = accuracy - TIE_BREAK * loss``. Accuracies on a validation set
    of ``N`` images differ by at least ``1 / N``, far more than the loss
    term (losses stay below ``1 / (N * TIE_BREAK)`` for any realistic
    ``N``), so the highest score is the highest accuracy, and of equally
    accurate epochs the one with the lower loss. Runs before the checkpoint
    callback, which keeps the epoch of the highest score.
    """

    TIE_BREAK = 1e-7

    def __init__(self, name: str, accuracy: str, loss: str) -> None:
        super().__init__()
        self.name, self.accuracy, self.loss = name, accuracy, loss

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.accuracy in logs and self.loss in logs:
            logs[self.name] = float(logs[self.accuracy]) - self.TIE_BREAK * float(logs[self.loss])


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` (best weights only) that never leaves a torn file behind.

    Keras writes the weights to a temporary ``.partial.weights.h5`` name and
    this callback renames it over ``filepath`` at once, so a kill during the
    write leaves the previous best checkpoint whole.
    """

    def __init__(self, filepath: str | os.PathLike, **kwargs) -> None:
        self.final_path = Path(filepath)
        name = self.final_path.name.removesuffix(".weights.h5")
        self.partial_path = self.final_path.with_name(f".{name}.partial.weights.h5")
        super().__init__(str(self.partial_path), save_best_only=True, save_weights_only=True,
                         **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        check_space(self.final_path.parent, state_bytes(self.model), "the best checkpoint")
        super().on_epoch_end(epoch, logs)
        if self.partial_path.exists():
            commit(self.partial_path, self.final_path)


class OptionalTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback whose failure warns once and lets training go on.

    The logs are a view of the run, not part of it: a log folder that becomes
    unwritable or a full disk under it (an error of TensorBoard's writer,
    any of its hooks) ends the logging with one warning naming the folder,
    and the phase trains, backs up and saves as before.
    """

    _failed = False

    def _guard(self, hook: str, *args, **kwargs) -> None:
        if self._failed:
            return
        try:
            getattr(super(), hook)(*args, **kwargs)
        except Exception as error:  # TensorFlow's writer raises OpError, os raises OSError
            self._failed = True
            text = str(error).strip().splitlines()
            warnings.warn(f"TensorBoard logs cannot be written to {self.log_dir} "
                          f"({text[0] if text else type(error).__name__}); training goes on without them",
                          RuntimeWarning, stacklevel=2)

    def on_train_begin(self, logs=None):
        self._guard("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._guard("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._guard("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._guard("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._guard("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._guard("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._guard("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._guard("on_test_end", logs)


class LastEpochLogs(keras.callbacks.Callback):
    """Keeps the latest epoch's logs in ``path`` (temporary name, then renamed)."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.path.with_name(f".{self.path.stem}.partial.json")
        body = {"epoch": int(epoch), "logs": {k: float(v) for k, v in (logs or {}).items()}}
        tmp.write_text(json.dumps(body), encoding="utf-8")
        commit(tmp, self.path)


def read_csv_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """A ``CSVLogger`` file as a Keras history dict (``epoch`` column left out)."""
    path = Path(path)
    if not path.exists():
        return {}
    check_size(path, MAX_CSV_BYTES)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [_number(row.get(k)) for row in rows] for k in keys}


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class TrainingPhase:
    """The resumable state of one ``fit`` in ``state`` (see the module docstring).

    ``monitor`` is the quantity whose best epoch is kept (``val_loss``, or
    ``loss`` without validation), the lowest with ``mode="min"`` and the
    highest with ``mode="max"``; ``selection`` (a :class:`SelectionScore`)
    computes a monitored score before the checkpoint sees it; ``tensorboard``
    is a folder for the phase's TensorBoard logs (every epoch's scalars, so
    ``tensorboard --logdir runs/`` shows every phase and fold of every run).
    Without ``resume`` any state left in
    ``state`` by an earlier run is removed first, so a fresh run never
    restores a stranger's weights. ``backup=False`` leaves out the per-epoch
    backup, for a phase that will never be resumed.
    """

    def __init__(self, state: str | os.PathLike, monitor: str, resume: bool = False,
                 backup: bool = True, mode: str = "min",
                 selection: SelectionScore | None = None,
                 tensorboard: str | os.PathLike | None = None) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be one of min, max. Received: mode={mode!r}")
        self.state = Path(state)
        self.monitor = monitor
        self.mode = mode
        self.selection = selection
        self.tensorboard = None if tensorboard is None else Path(tensorboard)
        self.resume = resume
        self.backup = backup
        if not resume:
            shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)

    backup_dir = property(lambda self: self.state / "backup")
    best_path = property(lambda self: self.state / "best.weights.h5")
    log_path = property(lambda self: self.state / "history.csv")
    last_path = property(lambda self: self.state / "last_epoch.json")
    done_path = property(lambda self: self.state / "done.weights.h5")

    @property
    def done(self) -> bool:
        """Whether an earlier run finished this phase (its result is kept)."""
        return self.done_path.exists()

    def completed_epochs(self) -> int:
        """Epochs the backup holds: the epoch a resumed ``fit`` starts from."""
        return backed_up_epochs(self.backup_dir)

    def _repair_log(self, epochs: int) -> list[dict[str, str]]:
        """The log cut or completed to exactly the ``epochs`` the backup holds.

        The row of the last backed-up epoch is rewritten from
        ``last_epoch.json`` whenever that holds it: the kill may have missed
        the row, or cut it in the middle.
        """
        try:
            last = read_json(self.last_path, limit=1 << 20)
        except (OSError, ValueError):
            last = None
        if not (last and last.get("epoch") == epochs - 1):
            last = None
        rows, fields = [], []
        if self.log_path.exists():
            check_size(self.log_path, MAX_CSV_BYTES)
            with self.log_path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                fields = list(reader.fieldnames or [])
                rows = [row for row in reader
                        if _number(row.get("epoch")) < (epochs - 1 if last else epochs)]
        if last and len(rows) == epochs - 1:
            fields = fields or ["epoch", *sorted(last["logs"])]
            rows.append({"epoch": str(epochs - 1),
                         **{k: repr(v) for k, v in last["logs"].items() if k in fields}})
        tmp = self.log_path.with_name(".history.partial.csv")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        commit(tmp, self.log_path)
        return rows

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """Timing, best checkpoint, last logs, NaN stop, backup and CSV log, in that order.

        On resume the log is made to match the epochs the backup holds, and
        the best checkpoint starts from the best monitored value among them,
        so an epoch after the restart only replaces the checkpoint when it
        beats every epoch before the kill.
        """
        threshold = None
        if self.resume:
            rows = self._repair_log(self.completed_epochs())
            values = [_number(row.get(self.monitor)) for row in rows]
            values = [v for v in values if math.isfinite(v)]
            if values and self.best_path.exists():
                threshold = min(values) if self.mode == "min" else max(values)
        else:
            self.log_path.unlink(missing_ok=True)
        backup = [EpochBackup(self.backup_dir)] if self.backup else []
        return [
            EpochTimer(),
            *([self.selection] if self.selection is not None else []),
            AtomicModelCheckpoint(self.best_path, monitor=self.monitor, mode=self.mode,
                                  initial_value_threshold=threshold),
            LastEpochLogs(self.last_path),
            keras.callbacks.TerminateOnNaN(),
            *backup,
            keras.callbacks.CSVLogger(str(self.log_path), append=True),
            *([OptionalTensorBoard(str(self.tensorboard), write_graph=False,
                                   update_freq="epoch", profile_batch=0)]
              if self.tensorboard is not None else []),
        ]

    def history(self) -> dict[str, list[float]]:
        """Every completed epoch of the phase, across restarts, as a Keras history."""
        return read_csv_history(self.log_path)

    def best_epoch(self) -> int | None:
        """The 1-based epoch whose weights the phase kept (``None`` before any epoch)."""
        values = [v if math.isfinite(v) else None for v in self.history().get(self.monitor, [])]
        finite = [(v, i) for i, v in enumerate(values) if v is not None]
        if not finite:
            return None
        best = min(finite) if self.mode == "min" else max(finite, key=lambda p: (p[0], -p[1]))
        return best[1] + 1

    def finish(self, model: keras.Model) -> None:
        """After ``fit``: restore the best epoch, keep it as the phase's result, drop the backup.

        The best checkpoint itself becomes the result (a rename, not a second
        save of the weights and optimizer state).
        """
        if self.best_path.exists():
            load_weights(model, self.best_path)
            os.replace(self.best_path, self.done_path)
        else:
            tmp = self.done_path.with_name(".done.partial.weights.h5")
            model.save_weights(str(tmp))
            commit(tmp, self.done_path)
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    def load(self, model: keras.Model) -> None:
        """Give ``model`` the result of the finished phase."""
        load_weights(model, self.done_path)


def load_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """``model.load_weights`` of a file that also holds optimizer state (optimizer built first)."""
    load_training_state(model, path)
