"""Files written so that a crash never leaves a torn one.

Every artifact goes to a temporary name in the same folder, is flushed to
disk (``fsync``) and renamed into place (``os.replace`` is atomic on one file
system), so a process killed at any moment, or a machine that loses power,
leaves each earlier file whole and no half-written one.

What a run wrote is read back as input, never trusted: :func:`read_json`
reads ``metrics.json``, ``config.json``, ``splits.json`` and the other JSON
files of a run directory or a model folder only when they are regular
files within :data:`MAX_JSON_BYTES`, and :func:`check_size` bounds any
other file read back whole (a history CSV).
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 64 << 20
"""The largest JSON file a run directory or a model folder may hold to be read back (the largest
written, a comparison's ``predictions.json`` or a k-fold run's ``splits.json``, is a few MiB)."""

MAX_CSV_BYTES = 64 << 20
"""The largest CSV file (a training history) read back whole."""


class FileTooLarge(ValueError):
    """A file read back that is not a regular file, or larger than its bound: one line naming it."""


def check_size(path: str | os.PathLike, limit: int) -> int:
    """The size of the regular file ``path``, or :class:`FileTooLarge` when it is over ``limit``
    bytes or not a regular file (a FIFO would block the read); ``OSError`` when it is missing."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise FileTooLarge(f"{path} must be a regular file to be read. Received: a special file "
                           f"(mode {stat.filemode(info.st_mode)})")
    if info.st_size > limit:
        raise FileTooLarge(f"{path} must be at most {_size_text(limit)} to be read. Received: a file of "
                           f"{_size_text(info.st_size)}")
    return info.st_size


def _size_text(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB ({nbytes} bytes)" if nbytes >= 2**20 else f"{nbytes} bytes"


def read_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path``, read only when it is a regular file of at most ``limit`` bytes.

    The one reader of the JSON files a run directory or a model folder
    holds: such a file is input like any other. Raises
    :class:`FileTooLarge` (over ``limit``, or not a regular file, checked
    before a byte is read), ``ValueError`` naming the file when it is not
    UTF-8 JSON or nests too deep to parse, and ``OSError`` when it cannot
    be read.
    """
    check_size(path, limit)
    with open(path, "rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise FileTooLarge(f"{path} must be at most {_size_text(limit)} to be read. Received: a file "
                           f"that grew past it while read")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} must hold UTF-8 JSON. Received: {first}") from None
    except RecursionError:
        raise ValueError(f"{path} must hold JSON nested less deeply. Received: nesting deeper than "
                         "the parser takes") from None


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
    try:
        tmp.write_text(text, encoding="utf-8")
        return commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
        return commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class TextWriter:
    """A text file written as it goes under its temporary name, then flushed and renamed into place.

    As a context manager it yields the open file. When the block ends
    normally, or on Ctrl-C (everything written so far is whole), the file
    is committed; on any other exception it is removed. A write the
    machine refuses (a full disk, a folder gone) is an ``OSError`` naming
    ``path``, never the temporary name, and leaves no file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.temporary = temporary_name(self.path)
        self.handle = None

    def __enter__(self):
        try:
            self.handle = self.temporary.open("w", encoding="utf-8", newline="")
        except OSError as error:
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from None
        return self.handle

    def __exit__(self, kind, error, traceback) -> None:
        keep = kind is None or issubclass(kind, KeyboardInterrupt)
        try:
            self.handle.close()
            if keep:
                commit(self.temporary, self.path)
        except OSError as failure:
            raise OSError(failure.errno, failure.strerror or str(failure), str(self.path)) from None
        finally:
            self.temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None and error.filename is None:
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from None


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


def creatable_folder(path: str | os.PathLike, setting: str) -> Path:
    """``path`` if :func:`writable_folder` would make it, checked without creating anything.

    A command checks its output folder with this before any work and
    creates it only when it writes, so that a command refused on the way
    leaves no empty folder behind.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{setting} {path} is not a folder (a file of that name exists)")
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), Path(os.curdir))
    if not existing.is_dir():
        raise ValueError(f"{setting} {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{setting} {path} " + ("is not writable" if existing == path
                                                  else f"cannot be created: {existing} is not writable"))
    return path
