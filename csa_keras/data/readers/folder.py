"""Reader for class-named image folders (format ``folder``).

Layouts: ``ROOT/<class>/<image>`` (CK+48) or the same under
``ROOT/{train,test,val,validation}/`` (the Kaggle FER2013 image release).
Folder names go through :func:`canonical_class` (``angry``, ``Happy``,
``surprise`` ...). Subjects come from a ``manifest.csv`` at the root
(columns ``path``/``file``/``filename`` and ``subject``, optionally
``sequence``) or, failing that, from CK+ style file names
``S010_004_00000017.png`` (subject ``S010``, sequence ``S010_004``), so
subject-independent protocols work on CK+48.

An image is a file whose extension is one of
:data:`~csa_keras.data.faces.decode.IMAGE_EXTENSIONS` (any case). The module
also holds the small pieces every reader shares: the image file check, the
CK+ name pattern, the root check and the final "nothing usable" check.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from csa_keras.data.dataset import Catalogue, Sample, SkipLog, canonical_class
from csa_keras.data.faces.decode import IMAGE_EXTENSIONS
from csa_keras.data.readers.rows import csv_header, csv_reader, csv_rows, open_text
from csa_keras.utils.paths import special_file

SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val", "validation": "val"}

CKPLUS_NAME = re.compile(r"^(S\d+)_(\d+)_\d+", re.IGNORECASE)

_MANIFEST_PATH_COLUMNS = ("path", "file", "filename")


def is_image_name(name: str) -> bool:
    """Whether a file name carries one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def not_an_image(file: Path) -> str | None:
    """Why ``file`` is skipped before it is read: ``not_an_image_extension``, or
    ``not_a_regular_file`` for a FIFO, device or socket with an image name (found
    with ``os.stat``, never opened); ``None`` for a regular image file."""
    if not is_image_name(file.name):
        return "not_an_image_extension"
    if special_file(file) is not None:
        return "not_a_regular_file"
    return None


def ckplus_subject(name: str) -> tuple[str, str] | None:
    """``(subject, sequence)`` from a CK+ frame name such as ``S010_004_00000017.png``."""
    match = CKPLUS_NAME.match(name)
    if match is None:
        return None
    subject = match.group(1).upper()
    return subject, f"{subject}_{match.group(2)}"


def require_folder(root: str | Path) -> Path:
    """``root`` as a :class:`Path`, or a one-line ``ValueError`` if it is not a folder."""
    path = Path(root)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    return path


def sorted_entries(folder: str | Path) -> list[os.DirEntry]:
    """The entries of ``folder`` sorted by name, hidden ones (``.DS_Store``, ``.git``) left out."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def checked(catalogue: Catalogue, hint: str = "") -> Catalogue:
    """Return ``catalogue``, or raise a one-line ``ValueError`` when it is empty.

    The message names the path and format and says what was skipped, so the
    user sees why nothing was usable.
    """
    if catalogue.samples:
        return catalogue
    message = f"no labelled images found under {catalogue.root} (format {catalogue.format})"
    if catalogue.skipped:
        message += "; skipped " + ", ".join(
            f"{reason}: {n}" for reason, n in catalogue.skipped.as_dict().items())
    if hint:
        message += f"; {hint}"
    raise ValueError(message)


def _read_manifest(path: Path) -> tuple[dict[str, tuple[str, str | None]], dict[str, tuple[str, str | None]]]:
    """Subject and sequence per relative path (and per unique base name) from ``manifest.csv``.

    Returns two empty mappings for a manifest without a path and a subject
    column: such a file describes something else and is not ours to judge.
    Rows too short or holding bytes that are not UTF-8 give no subject; a
    special file or a row the ``csv`` module cannot parse is a one-line
    ``ValueError``.
    """
    by_path: dict[str, tuple[str, str | None]] = {}
    by_name: dict[str, tuple[str, str | None] | None] = {}
    try:
        with open_text(path, "manifest") as handle:
            reader = csv_reader(handle)
            header = [h.strip().lower() for h in csv_header(reader, f"manifest {path}")]
            path_col = next((header.index(c) for c in _MANIFEST_PATH_COLUMNS if c in header), None)
            if path_col is None or "subject" not in header:
                return {}, {}
            subject_col = header.index("subject")
            sequence_col = header.index("sequence") if "sequence" in header else None
            needed = max(path_col, subject_col, sequence_col or 0) + 1
            for _, row in csv_rows(reader, needed, f"manifest {path}", SkipLog()):
                rel = row[path_col].strip().replace("\\", "/")
                while rel.startswith("./"):
                    rel = rel[2:]
                subject = row[subject_col].strip()
                if not rel or not subject:
                    continue
                sequence = (row[sequence_col].strip() or None) if sequence_col is not None else None
                by_path[rel] = (subject, sequence)
                name = rel.rsplit("/", 1)[-1]
                by_name[name] = None if name in by_name else (subject, sequence)
    except (OSError, csv.Error) as err:
        raise ValueError(f"cannot read manifest {path}: {err}") from None
    return by_path, {k: v for k, v in by_name.items() if v is not None}


def read_folder(root: str | Path, manifest: str | Path | None = None) -> Catalogue:
    """Read ``ROOT/<class>/`` or ``ROOT/{train,test,val}/<class>/`` image folders.

    ``manifest`` is a CSV giving ``subject`` (and ``sequence``) per image
    ``path`` relative to ``root``; by default ``ROOT/manifest.csv`` is used
    when present. Images are searched recursively inside each class folder.
    Skips: class folders with an unknown name (``unknown_class_folder``,
    counted per file), files without an image extension inside class
    folders (``not_an_image_extension``), FIFOs, devices and sockets with
    an image name (``not_a_regular_file``, found with ``os.stat``, never
    opened), images lying outside any class folder
    (``image_outside_class_folder``), and class folders holding no file at
    all (``empty_class_folder``, counted per folder: the class is then
    absent, and the report says why). Hidden entries are ignored; other
    files at the root (a README, the manifest) are metadata. A manifest
    that is a special file is a one-line ``ValueError``.
    """
    root_path = require_folder(root)
    manifest_path = Path(manifest) if manifest is not None else root_path / "manifest.csv"
    if manifest is not None and not manifest_path.exists():
        raise ValueError(f"manifest {manifest_path} does not exist")
    if manifest is not None and manifest_path.is_dir():
        raise ValueError(f"manifest {manifest_path} is a folder, not a CSV file")
    present = manifest_path.exists() and not manifest_path.is_dir()
    by_path, by_name = _read_manifest(manifest_path) if present else ({}, {})
    if manifest is not None and not by_path:
        raise ValueError(f"manifest {manifest_path} needs a path (or file/filename) and a subject column")

    skipped = SkipLog()
    samples: list[Sample] = []

    def read_class_folder(folder: Path, split: str | None) -> None:
        label = canonical_class(folder.name)
        files = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
        if label is None:
            if files:
                skipped.add("unknown_class_folder", str(folder), n=len(files))
            return
        if not files:
            skipped.add("empty_class_folder", str(folder))
            return
        for file in files:
            reason = not_an_image(file)
            if reason is not None:
                skipped.add(reason, str(file))
                continue
            rel = file.relative_to(root_path).as_posix()
            subject, sequence = by_path.get(rel) or by_name.get(file.name) or ckplus_subject(file.name) or (None, None)
            samples.append(Sample(source=str(file), label=label, subject=subject,
                                  split=split, sequence=sequence))

    for entry in sorted_entries(root_path):
        if entry.is_dir():
            split = SPLIT_FOLDERS.get(entry.name.lower())
            if split is None:
                read_class_folder(root_path / entry.name, None)
                continue
            for class_entry in sorted_entries(entry.path):
                if class_entry.is_dir():
                    read_class_folder(root_path / entry.name / class_entry.name, split)
                elif is_image_name(class_entry.name):
                    skipped.add("image_outside_class_folder", class_entry.path)
        elif is_image_name(entry.name):
            skipped.add("image_outside_class_folder", str(root_path / entry.name))

    return checked(Catalogue(format="folder", root=str(root), samples=samples, skipped=skipped,
                             needs_detection=False, colour=False))
