"""Dataset readers for every supported format, and ``format="auto"`` detection from the layout.

Each reader is ``read_<format>(root, **options) -> Catalogue``: it walks the
layout on disk, parses labels, names and CSV rows, maps labels onto the
canonical classes and records every unusable entry in the catalogue's
:class:`~csa_keras.data.dataset.SkipLog`. Readers never decode image files;
the loader does that (and counts unreadable ones) when it builds the
:class:`~csa_keras.data.dataset.FaceDataset`.

============== ==================================== ===============================
format         reader                               options
============== ==================================== ===============================
``folder``      :func:`read_folder`                  ``manifest``
``ckplus``      :func:`read_ckplus`                  ``last_frames``, ``first_as_neutral``
``fer2013-csv`` :func:`read_fer2013`                 ``public_test_as``
``rafdb``       :func:`read_rafdb`                   ``variant``
``affectnet``   :func:`read_affectnet`               ``classes``
``jaffe``       :func:`read_jaffe`                   (none)
============== ==================================== ===============================
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from csa_keras.data.dataset import Catalogue, canonical_class
from csa_keras.data.readers.affectnet import LISTS_FOLDER, read_affectnet
from csa_keras.data.readers.ckplus import find_ckplus_folders, read_ckplus
from csa_keras.data.readers.fer2013 import REQUIRED_COLUMNS as FER_COLUMNS
from csa_keras.data.readers.fer2013 import find_fer2013_csv, read_fer2013, read_header
from csa_keras.data.readers.folder import SPLIT_FOLDERS, read_folder, sorted_entries
from csa_keras.data.readers.jaffe import jaffe_files, parse_jaffe_name, read_jaffe
from csa_keras.data.readers.options import parse_reader_options, reader_kwargs
from csa_keras.data.readers.rafdb import find_rafdb_labels, read_rafdb
from csa_keras.utils.paths import special_file

FORMATS = ("folder", "ckplus", "fer2013-csv", "rafdb", "affectnet", "jaffe")
"""The formats a reader reads (``READERS``)."""

FORMAT_CHOICES = ("auto", *FORMATS)
"""The values of the loader's ``format``: a reader's, or ``auto`` (recognised from the layout)."""

READERS: dict[str, Callable[..., Catalogue]] = {
    "folder": read_folder,
    "ckplus": read_ckplus,
    "fer2013-csv": read_fer2013,
    "rafdb": read_rafdb,
    "affectnet": read_affectnet,
    "jaffe": read_jaffe,
}

READER_OPTIONS: dict[str, tuple[str, ...]] = {
    name: tuple(list(inspect.signature(reader).parameters)[1:]) for name, reader in READERS.items()
}

__all__ = [
    "FORMATS",
    "FORMAT_CHOICES",
    "READERS",
    "READER_OPTIONS",
    "detect_format",
    "parse_reader_options",
    "read_affectnet",
    "read_catalogue",
    "read_ckplus",
    "read_fer2013",
    "read_folder",
    "read_jaffe",
    "read_rafdb",
    "reader_kwargs",
]


def _is_fer_csv(path: Path) -> bool:
    header = read_header(path)
    return all(column in header for column in FER_COLUMNS)


def _has_class_folders(folder: Path) -> bool:
    return any(e.is_dir() and canonical_class(e.name) is not None for e in sorted_entries(folder))


def _looks_like_folder(root: Path) -> bool:
    if _has_class_folders(root):
        return True
    return any(e.is_dir() and e.name.lower() in SPLIT_FOLDERS and _has_class_folders(root / e.name)
               for e in sorted_entries(root))


def _unknown(path: Path) -> ValueError:
    return ValueError(f"cannot tell the format of {path}: expected one of {', '.join(FORMATS)} "
                      "(pass the format explicitly if the layout is right)")


def detect_format(path: str | Path) -> str:
    """The format of the dataset at ``path`` (one of :data:`FORMATS`), by its layout.

    Checked in order: a CSV with ``emotion`` and ``pixels`` columns, or a
    folder holding ``fer2013.csv`` (``fer2013-csv``); ``cohn-kanade-images/``
    and ``Emotion/`` in the root or one level down (``ckplus``);
    ``basic/EmoLabel/list_patition_label.txt`` or the root being ``basic/``
    (``rafdb``); ``Manually_Annotated_file_lists/`` (``affectnet``);
    class-named subfolders, optionally under ``train``/``test``/``val``
    (``folder``); files named like ``KA.AN1.39.tiff`` in the root or one level
    down (``jaffe``). Raises a one-line ``ValueError`` for a missing path, a
    special file (a FIFO, a device, a socket: checked with ``os.stat``, never
    opened), an empty folder or a layout it does not know.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    kind = special_file(path)
    if kind is not None:
        raise ValueError(f"{path} is {kind}, not a regular file or a folder: expected a dataset in one of "
                         f"{', '.join(FORMATS)}")
    if path.is_file():
        if path.suffix.lower() == ".csv" and _is_fer_csv(path):
            return "fer2013-csv"
        raise _unknown(path)
    if not sorted_entries(path):
        raise ValueError(f"{path} is an empty folder: expected a dataset in one of {', '.join(FORMATS)}")
    fer_csv = find_fer2013_csv(path)
    if fer_csv is not None and special_file(fer_csv) is not None:
        raise ValueError(f"{fer_csv} is {special_file(fer_csv)}, not a regular file (format fer2013-csv)")
    if fer_csv is not None and _is_fer_csv(fer_csv):
        return "fer2013-csv"
    if find_ckplus_folders(path) is not None:
        return "ckplus"
    if find_rafdb_labels(path) is not None:
        return "rafdb"
    if (path / LISTS_FOLDER).is_dir():
        return "affectnet"
    if _looks_like_folder(path):
        return "folder"
    if any(parse_jaffe_name(f.name) is not None for f in jaffe_files(path)):
        return "jaffe"
    raise _unknown(path)


def read_catalogue(path: str | Path, format: str = "auto", **options) -> Catalogue:
    """Read the dataset at ``path`` with the reader of ``format`` (``auto`` detects it).

    ``options`` may hold the options of any reader (see :data:`READER_OPTIONS`),
    so a command line can pass all of them: each reader receives the ones it
    accepts, and options set to ``None`` keep the reader's default. A name no
    reader accepts raises ``ValueError``.
    """
    if format not in FORMAT_CHOICES:
        raise ValueError(f"unknown format {format!r}: expected auto or one of {', '.join(FORMATS)}")
    known = {name for names in READER_OPTIONS.values() for name in names}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown reader option(s) {', '.join(unknown)}: "
                         f"expected some of {', '.join(sorted(known))}")
    name = detect_format(path) if format == "auto" else format
    accepted = READER_OPTIONS[name]
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return READERS[name](path, **kwargs)
