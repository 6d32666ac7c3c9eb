"""The run directory, written so that a crash never leaves a torn file.

Every artifact goes to a temporary name in the same folder and is renamed
into place (``os.replace`` is atomic on one file system), so a run killed at
any moment leaves each earlier artifact whole and no half-written one.

One process at a time writes a run directory: :func:`open_run` takes a lock
on ``.lock`` in it (``filelock``, released by the operating system when the
process ends, however it ends), and a second process given the same folder
gets one line at once instead of mixing its files with the first one's.

A run also keeps the state of its unfinished training in ``.backup/``
(:class:`~csa_keras.training.callbacks.TrainingPhase`), which ``--resume``
continues from and a finished run removes (:func:`open_run`,
:func:`close_run`). Under multi-worker training only the chief writes the
run directory; every other worker works in a scratch folder of its own that
is removed at the end, so no two processes write the same file.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from csa_keras.utils.files import FileTooLarge, commit, read_json, temporary_name, writable_folder


def default_output(command: str) -> Path:
    """``runs/<command>-<timestamp>``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{command}-{stamp}"


def prepare(path: str | os.PathLike) -> Path:
    """Create the output folder, or fail in one line if it cannot be one."""
    return writable_folder(path, "output")


def write_history(path: str | os.PathLike, phases: Iterable[tuple[str, dict[str, list]]]) -> Path:
    """One ``history.csv`` for all phases: a row per epoch, a ``phase`` column."""
    rows, keys = [], []
    for phase, history in phases:
        names = list(history)
        keys += [k for k in names if k not in keys]
        n = max((len(v) for v in history.values()), default=0)
        for epoch in range(n):
            row = {"phase": phase, "epoch": epoch + 1}
            row.update({k: history[k][epoch] for k in names if epoch < len(history[k])})
            rows.append(row)
    path = Path(path)
    tmp = temporary_name(path)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["phase", "epoch", *keys])
        writer.writeheader()
        writer.writerows(rows)
    return commit(tmp, path)


BACKUP = ".backup"
"""The folder of a run directory that holds resumable training state."""

TENSORBOARD = "tensorboard"
"""The folder of a run directory (of each fold under k-fold) with the TensorBoard logs of
every training phase: ``tensorboard --logdir runs/`` shows them all."""

LOCK = ".lock"
"""The file of a run directory that its writing process holds locked."""

_HELD: dict[Path, FileLock] = {}

RESUME_FREE = ("strategy", "deterministic")
"""Settings a resumed run may change: where and how it runs, not what it computes."""


def check_resume(out: Path, config: dict[str, Any], adds: tuple[str, ...] = ()) -> None:
    """Refuse, in one line, to resume a run that was started with other settings.

    A backup restores weights and epochs of a particular model and data; the
    same command line (plus ``--resume``) is what continues it. ``adds`` name
    the settings that list pieces of work (a comparison's rows): a resumed run
    may add to them, keeping every piece it had, since what was done stays valid.
    """
    saved_path = out / "config.json"
    if not saved_path.exists():
        return
    try:
        saved = read_json(saved_path)["config"]
    except FileTooLarge:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"resume=True: {saved_path} is unreadable, so the run cannot be "
                         "matched; start it again without resume=True") from None
    current = json.loads(json.dumps(config, default=str))
    differ = [k for k in sorted(set(saved) | set(current))
              if k not in RESUME_FREE and saved.get(k) != current.get(k)
              and not (k in adds and _extends(current.get(k), saved.get(k)))]
    if differ:
        shown = ", ".join(f"{k} {saved.get(k)!r} now {current.get(k)!r}" for k in differ[:3])
        raise ValueError(f"resume=True: {out} was started with other settings ({shown}); "
                         "give the same settings, or another output folder")


def _extends(current: Any, saved: Any) -> bool:
    """Whether the list ``current`` holds every item of the list ``saved``."""
    return isinstance(current, list) and isinstance(saved, list) and all(
        item in current for item in saved)


def open_run(output: str | os.PathLike, config: dict[str, Any], chief: bool = True,
             resume: bool = False, worker: int = 0, adds: tuple[str, ...] = ()) -> Path:
    """The folder this process writes: the run directory, or a worker's scratch folder.

    The chief (any single-process run) prepares ``output``; with ``resume``
    it checks the settings against ``config.json`` (:func:`check_resume`, which
    lets the settings ``adds`` grow).
    Without ``resume``, a folder holding the training state of an unfinished
    run is refused rather than overwritten: that state is hours of work a
    forgotten ``--resume`` must not throw away. Other workers of a
    multi-worker run get a new temporary folder.
    """
    if not chief:
        return Path(tempfile.mkdtemp(prefix=f"csa_keras-worker{worker}-"))
    out = prepare(output)
    lock(out)
    try:
        if resume:
            check_resume(out, config, adds)
        elif (out / BACKUP).exists():
            raise ValueError(f"output {out} holds an unfinished run: continue it with resume=True, "
                             f"or remove {out / BACKUP} to start it again")
    except ValueError:
        release(out)
        raise
    return out


def lock(out: Path) -> None:
    """Make this process the only writer of the run directory ``out``, or fail in one line.

    The lock is not waited for: a second training started on the same
    folder, at the same moment or hours later, is refused before it writes
    anything. Opening a folder this process already holds is allowed (a
    notebook that runs again after an error).
    """
    key = out.resolve()
    if key in _HELD:
        return
    held = FileLock(out / LOCK, timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise ValueError(f"output {out} is in use by another process (it holds {out / LOCK}); "
                         "wait for that run to end, or choose another output") from None
    except OSError as error:
        raise ValueError(f"output {out} cannot be locked: {error.strerror or error}") from None
    _HELD[key] = held


def release(out: Path) -> None:
    """Let another process open ``out`` (the lock file itself stays, empty)."""
    held = _HELD.pop(out.resolve(), None)
    if held is not None:
        held.release()


def finished_metrics(out: Path) -> dict[str, Any] | None:
    """The metrics of a run that already finished in ``out`` (``metrics.json``, no backup)."""
    path = out / "metrics.json"
    if (out / BACKUP).exists() or not path.exists():
        return None
    try:
        metrics = read_json(path)
    except FileTooLarge:
        raise
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def close_run(out: Path, chief: bool = True) -> None:
    """End a run: the chief drops the training state and its lock, another worker its scratch folder."""
    shutil.rmtree(out / BACKUP if chief else out, ignore_errors=True)
    if chief:
        release(out)
