"""Files written so that a crash never leaves a torn one.

Every artifact goes to a temporary name in the same folder, is flushed to
disk (``fsync``) and renamed into place (``os.replace`` is atomic on one file
system), so a process killed at any moment, or a machine that loses power,
leaves each earlier file whole and no half-written one.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any


def temporary_name(path: Path) -> Path:
    """``.<stem>.partial<suffix>`` beside ``path``: where a file is written before it is renamed."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def check_space(folder: str | os.PathLike, nbytes: int, what: str) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``folder`` unless it has room for ``nbytes`` more.

    Checked before writes whose library does not fail cleanly on a full disk
    (HDF5 through ``h5py`` can crash the process once a write has failed).
    """
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise OSError(errno.ENOSPC, f"No space left on device for {what} ({nbytes / 2**20:.1f} MiB "
                      f"needed, {free / 2**20:.1f} MiB free)", str(folder))


def sync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to disk before it is renamed into place."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def sync_folder(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Flush ``tmp`` to disk and rename it to ``path``: the last step of every atomic write."""
    tmp, path = Path(tmp), Path(path)
    sync_file(tmp)
    os.replace(tmp, path)
    sync_folder(path.parent)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = temporary_name(path)
    tmp.write_text(text, encoding="utf-8")
    return commit(tmp, path)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(_finite(obj), indent=2, default=str) + "\n")


def save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> Path:
    path = Path(path)
    tmp = temporary_name(path)
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return commit(tmp, path)


def writable_folder(path: str | os.PathLike, setting: str) -> Path:
    """``path`` as a folder this process can write, created if needed, or a one-line error.

    ``setting`` names the setting the path came from (``output``,
    ``annotate``), which the error names.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{setting} {path} is not a folder (a file of that name exists)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{setting} {path} cannot be created: {error.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{setting} {path} is not writable")
    return path
