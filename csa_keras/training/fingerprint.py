"""What a run was trained on, recorded so that ``resume`` continues only on the same data.

A backup restores weights trained on some images and ``splits.json`` names
images by their index: resumed on data that changed since (images removed,
a class added), a run would go on from weights of the old data and write
splits of the new, silently. Each run directory records its data in
``data.json`` (:data:`DATA_FILE`) when it starts, in two parts:

``files``
    the catalogue of the files under ``data`` (a folder or a file), per
    top-level entry (a class folder, a CSV): how many files, their bytes,
    and a digest of their relative paths and sizes. Made before any image
    is read (a ``stat`` per file), so files added, removed, renamed or
    resized are refused at once. Modification times are left out: data
    copied to another disk or machine, or restored from a backup, is the
    same data, and the ``dataset`` digest below checks its content. (Records
    of version 1 digested the times too; for them, a difference in the
    digest alone is left to the ``dataset`` check.) The built-in synthetic
    faces are described by their parameters.
``dataset``
    the dataset as loaded: images per class and a digest of the images and
    labels, which also covers a dataset passed from Python.

On resume, each recorded part is compared with the data now and a
difference is one line naming what changed (``3 files removed under
anger/, folder contempt/ added since the run started``; ``class 'contempt'
added``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.utils import files

DATA_FILE = "data.json"
"""The file of a run directory that records the data the run started on."""

CATALOGUE_VERSION = 2
"""The ``files`` part's format: 2 digests paths and sizes; 1 (unmarked) also modification times."""


def data_catalogue(data: str | os.PathLike | None, synthetic: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``files`` part of :data:`DATA_FILE` for the data path ``data`` (module docstring).

    ``None`` (the built-in faces) is described by ``synthetic``, their
    parameters. Symbolic links to folders are not followed.
    """
    if data is None:
        return {"synthetic": synthetic or {}}
    root = Path(data)
    entries: dict[str, list[tuple[str, int]]] = {}
    if root.is_file():
        entries[root.name] = [(root.name, root.stat().st_size)]
    elif root.is_dir():
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except OSError:
                    continue
                relative = path.relative_to(root).as_posix()
                entries.setdefault(relative.split("/", 1)[0], []).append(
                    (relative, stat.st_size))
    folders = {}
    for top, listed in sorted(entries.items()):
        digest = hashlib.sha256("\n".join(f"{p}\t{s}" for p, s in listed).encode()).hexdigest()
        folders[top] = {"files": len(listed), "bytes": sum(s for _, s in listed),
                        "digest": digest[:32], "folder": len(listed) > 1 or listed[0][0] != top}
    return {"version": CATALOGUE_VERSION, "path": str(data), "entries": folders}


def dataset_record(dataset) -> dict[str, Any]:
    """The ``dataset`` part of :data:`DATA_FILE`: images per class and a digest of images and labels."""
    digest = hashlib.sha256()
    for array in (dataset.images, dataset.labels):
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(memoryview(array).cast("B"))
    return {"n_images": len(dataset), "class_counts": dataset.class_counts(),
            "digest": digest.hexdigest()[:32]}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def catalogue_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two ``files`` parts, in words; empty when nothing does."""
    if "synthetic" in saved or "synthetic" in now:
        if saved.get("synthetic") != now.get("synthetic"):
            return [f"the data was {_data_words(saved)} and is now {_data_words(now)}"]
        return []
    changes = []
    before, after = saved.get("entries", {}), now.get("entries", {})
    digests_comparable = saved.get("version", 1) == now.get("version", 1)
    for top in sorted(set(before) | set(after)):
        old, new = before.get(top), after.get(top)
        kind = "folder" if (old or new or {}).get("folder") else "file"
        name = f"{top}/" if kind == "folder" else top
        listed = f" ({_count((old or new)['files'], 'file')})" if kind == "folder" else ""
        if old is None:
            changes.append(f"{kind} {name} added{listed}")
        elif new is None:
            changes.append(f"{kind} {name} removed{listed}")
        elif (old["files"], old["bytes"]) != (new["files"], new["bytes"]) or (
                digests_comparable and old["digest"] != new["digest"]):
            if kind == "file":
                changes.append(f"file {name} changed ({old['bytes']} bytes, now {new['bytes']})")
            elif new["files"] < old["files"]:
                changes.append(f"{_count(old['files'] - new['files'], 'file')} removed under {name}")
            elif new["files"] > old["files"]:
                changes.append(f"{_count(new['files'] - old['files'], 'file')} added under {name}")
            else:
                changes.append(f"files under {name} changed (same count; names or sizes differ)")
    return changes


def _data_words(part: dict[str, Any]) -> str:
    if "synthetic" in part:
        return "the built-in faces " + ", ".join(f"{k}={v}" for k, v in sorted(part["synthetic"].items()))
    return str(part.get("path"))


def dataset_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two ``dataset`` parts, in words; empty when nothing does."""
    if saved.get("digest") == now.get("digest"):
        return []
    before, after = saved.get("class_counts") or {}, now.get("class_counts") or {}
    changes = [f"class {name!r} added" for name in after if name not in before]
    changes += [f"class {name!r} removed" for name in before if name not in after]
    for name in before:
        if name in after and before[name] != after[name]:
            difference = after[name] - before[name]
            changes.append(f"{_count(abs(difference), 'image')} {'more' if difference > 0 else 'fewer'} "
                           f"of {name!r}")
    return changes or [f"the images or labels differ ({saved.get('n_images')} images, now {now.get('n_images')})"]


def _read(out: Path) -> dict[str, Any] | None:
    try:
        data = files.read_json(out / DATA_FILE)
    except files.FileTooLarge:
        raise
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _refuse(out: Path, changes: list[str]) -> None:
    shown = ", ".join(changes[:4]) + (f" and {len(changes) - 4} more" if len(changes) > 4 else "")
    raise ValueError(f"resume=True: the data of {out} changed since the run started ({shown}); "
                     "resume only on the same data, or start again in another output folder")


def check_files(out: Path, catalogue: dict[str, Any], resume: bool) -> None:
    """On ``resume``, refuse in one line a ``files`` part that differs from the recorded one; then
    record ``catalogue`` (a new run, or one that recorded none)."""
    recorded = _read(out) if resume else None
    if recorded is not None and isinstance(recorded.get("files"), dict):
        changes = catalogue_changes(recorded["files"], catalogue)
        if changes:
            _refuse(out, changes)
        return
    files.write_json(out / DATA_FILE, {"files": catalogue})


def check_dataset(out: Path, dataset, resume: bool) -> None:
    """On ``resume``, refuse in one line a loaded dataset that differs from the recorded one; then
    record it (a new run, or one that recorded none)."""
    recorded = _read(out) or {}
    now = dataset_record(dataset)
    if resume and isinstance(recorded.get("dataset"), dict):
        changes = dataset_changes(recorded["dataset"], now)
        if changes:
            _refuse(out, changes)
        return
    files.write_json(out / DATA_FILE, {**recorded, "dataset": now})
