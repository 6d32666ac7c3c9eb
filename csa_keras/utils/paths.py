"""Where a command writes, checked against what it reads before any work.

A command's outputs must never touch its inputs: an annotated copy written
over the photograph it was drawn from, predictions written over an input
image, or a run directory inside the dataset, whose figures the next run
reads as class images. :func:`check_outputs` compares every output path with
every input path, both resolved (symbolic links and ``..`` followed), and
refuses an overlap in one ``ValueError`` line naming both settings and both
paths. It also refuses an output whose name the file system cannot hold,
so that no command fails on it half-way (:func:`name_limit`), and, for the
outputs a command names in ``results``, one that would overwrite another
run's results: a run directory, a file or folder in one, or a model file
(:func:`run_marker`).

What a command reads is checked too: :func:`special_file` tells a FIFO,
device or socket from ``os.stat`` alone, before anything opens it (the
dataset readers, image decoding, prediction's inputs and the model loader).
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from csa_keras.utils.files import temporary_name

PathLike = str | os.PathLike
DEFAULT_NAME_MAX = 255
"""Bytes a file name may have where the file system does not say (``NAME_MAX`` of most)."""
DEFAULT_PATH_MAX = 4096
"""Bytes a whole path may have where the file system does not say (``PATH_MAX`` of Linux)."""

RUN_FILES = ("metrics.json", "config.json", "comparison.json", "splits.json", "data.json", ".backup")
"""The files of which any one makes a folder a run directory (of training, a comparison or an
evaluation), besides a model file."""

MODEL_SUFFIX = ".keras"
"""The suffix of a model file, which no command's output may take or replace."""


def run_marker(folder: PathLike) -> str | None:
    """What makes ``folder`` a run directory: the first of :data:`RUN_FILES` it holds, else a model
    file it holds (``classifier.keras``); ``None`` for any other folder, or a path that is none."""
    folder = Path(folder)
    try:
        if not folder.is_dir():
            return None
        for name in RUN_FILES:
            if (folder / name).exists():
                return name
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower().endswith(MODEL_SUFFIX) and entry.is_file():
                    return entry.name
    except OSError:
        return None
    return None


def _check_results(setting: str, given: PathLike, target: Path, own: Path | None) -> None:
    """Refuse an output that would overwrite another run's results (:func:`check_outputs`)."""
    received = f"Received: {setting}={str(given)!r}"
    if target.suffix.lower() == MODEL_SUFFIX:
        raise ValueError(f"{setting} must not be a model file ({MODEL_SUFFIX}). {received}")
    if own is not None and (target == own or target.is_relative_to(own)):
        return
    marker = run_marker(target)
    if marker is not None:
        raise ValueError(f"{setting} must not be another run's directory: it holds {marker}. {received}; "
                         "choose a new folder")
    marker = run_marker(target.parent) if os.path.lexists(target) else None
    if marker is not None:
        raise ValueError(f"{setting} must not replace a file of another run's directory "
                         f"{str(target.parent)!r} (it holds {marker}). {received}; choose a path outside it")


def _existing(path: Path) -> Path:
    """The nearest folder of ``path`` (itself included) that exists, where the file system's limits are asked."""
    for folder in (path, *path.parents):
        try:
            if folder.is_dir():
                return folder
        except OSError:
            continue
    return Path(os.curdir)


def name_limit(folder: PathLike) -> tuple[int, int]:
    """The longest file name and path, in bytes, the file system holding ``folder`` takes."""
    where = _existing(Path(folder))
    limits = []
    for name, default in (("PC_NAME_MAX", DEFAULT_NAME_MAX), ("PC_PATH_MAX", DEFAULT_PATH_MAX)):
        try:
            limits.append(os.pathconf(where, name))
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def name_too_long(path: PathLike) -> OSError | None:
    """An ``ENAMETOOLONG`` error when a name in ``path``, or the whole, is too long for its file system.

    ``None`` when it fits. Lets a writer refuse one file with the operating
    system's own reason before it starts, rather than fail half-way.
    """
    path = Path(path)
    name_max, path_max = name_limit(path.parent)
    if any(_size(part) > name_max for part in path.parts) or _size(path.absolute()) >= path_max:
        return OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
    return None


def _size(text: PathLike) -> int:
    return len(os.fsencode(text))


def _check_name(setting: str, given: PathLike, resolved: Path, file: bool) -> None:
    """Refuse an output whose name, or whose temporary name for a file, the file system cannot hold."""
    name_max, path_max = name_limit(resolved.parent)
    received = f"Received: {setting}={str(given)!r}"
    longest = max(resolved.parts, key=_size)
    if _size(longest) > name_max:
        raise ValueError(f"{setting} must have names of at most {name_max} bytes, the most its file system "
                         f"takes. {received}, with a name of {_size(longest)} bytes")
    extra = _size(temporary_name(resolved).name) - _size(resolved.name) if file else 0
    if _size(resolved.name) + extra > name_max:
        raise ValueError(f"{setting} must have a name of at most {name_max - extra} bytes (it is written under "
                         f"a temporary name {extra} bytes longer first). {received}, a name of "
                         f"{_size(resolved.name)} bytes")
    if _size(resolved) + extra >= path_max:
        raise ValueError(f"{setting} must be a path shorter than the {path_max} bytes its file system takes. "
                         f"{received}")


def _resolve(setting: str, given: PathLike) -> Path:
    try:
        return Path(given).resolve()
    except (OSError, RuntimeError) as error:
        raise ValueError(f"{setting} must be a path that resolves. Received: {setting}={str(given)!r} "
                         f"({getattr(error, 'strerror', None) or error})") from None


def _paths(value: PathLike | Iterable[PathLike] | None) -> list[PathLike]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def check_outputs(outputs: Mapping[str, PathLike | None],
                  inputs: Mapping[str, PathLike | Iterable[PathLike] | None],
                  folders: Collection[str] = (), results: Collection[str] = (),
                  own: PathLike | None = None) -> None:
    """Refuse, in one ``ValueError`` line, outputs that would touch inputs or that no file system name holds.

    Args:
        outputs: each output setting and its path (``None``: not given).
        inputs: each input setting and its path or paths (``None``: none).
            An input that is a folder covers everything under it.
        folders: the output settings that are folders the command writes
            into (``annotate``, a run directory); the others are files,
            written under a temporary name beside them first
            (:func:`~csa_keras.utils.files.temporary_name`).
        results: the output settings that must not overwrite another run's
            results (evaluation, export and prediction outputs, a new
            comparison; a training run's own folder is its to resume).
        own: the run directory the command works on, whose files a
            ``results`` output may replace (an export into its run's
            ``export/`` folder).

    Refused, each naming both settings and both paths as given:

    - two outputs at one path;
    - an output that is an input;
    - an output inside an input folder;
    - an output folder that holds an input (a file or a folder);
    - an output whose name, or temporary name, or whole path is longer than
      its file system takes;
    - of ``results``: a model file (``.keras``), a run directory
      (:func:`run_marker`), or an existing file or folder in a run
      directory other than ``own``.

    Paths are compared resolved (:meth:`pathlib.Path.resolve`: symbolic
    links and ``..`` followed), so another spelling of the same place is
    caught too. Nothing is created or written.
    """
    resolved_inputs = [(setting, given, _resolve(setting, given))
                       for setting, value in inputs.items() for given in _paths(value)]
    seen: list[tuple[str, PathLike, Path]] = []
    for setting, given in outputs.items():
        if given is None:
            continue
        target = _resolve(setting, given)
        folder = setting in folders
        _check_name(setting, given, target, file=not folder)
        if setting in results:
            _check_results(setting, given, target, None if own is None else _resolve("own", own))
        for other, other_given, other_target in seen:
            if other_target == target:
                raise ValueError(f"{setting} must not be the path of another output. Received: "
                                 f"{setting}={str(given)!r}, the path of {other}={str(other_given)!r}")
        seen.append((setting, given, target))
        for input_setting, input_given, source in resolved_inputs:
            received = f"Received: {setting}={str(given)!r}"
            if target == source:
                raise ValueError(f"{setting} must not be an input. {received}, which is "
                                 f"{input_setting}={str(input_given)!r}")
            if _inside(target, source) and source.is_dir():
                raise ValueError(f"{setting} must not lie inside an input folder. {received}, inside "
                                 f"{input_setting}={str(input_given)!r}")
            if folder and _inside(source, target):
                raise ValueError(f"{setting} must not hold an input. {received}, which holds "
                                 f"{input_setting}={str(input_given)!r}")


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str | None:
    """What an ``os.stat`` mode is when it is neither a regular file nor a folder (``"a FIFO"``...), else ``None``.

    Readers and prediction check this before opening anything: opening a FIFO
    for reading waits for a writer, and a device may never end.
    """
    return next((kind for test, kind in _SPECIAL_FILES if test(mode)), None)


def special_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is a special file (``"a FIFO"``...), from ``os.stat`` alone, without opening it.

    ``None`` for a regular file, a folder, or a path that cannot be
    ``stat``-ed (whoever opens it then reports that).
    """
    try:
        return special_file_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None
