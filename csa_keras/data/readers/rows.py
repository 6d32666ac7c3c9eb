"""The text files some formats keep their labels in: CSV rows (FER2013, AffectNet) and label lines (RAF-DB).

A label file is checked with ``os.stat`` before it is opened (a FIFO would
make the read wait forever), read as UTF-8 with undecodable bytes kept
aside (``surrogateescape``) so that one broken row is a ``bad_encoding``
skip naming that row instead of a refusal of the whole file at a decoder's
buffer offset, and read a line at a time with at most
:data:`MAX_LINE_CHARS` characters a line, so a file without line breaks
cannot fill the memory. Any error names the row it happened at.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from csa_keras.data.dataset import SkipLog
from csa_keras.utils.paths import special_file

MAX_LINE_CHARS = 2**20
"""The longest line read from a label file; a FER2013 row is about 9,000 characters."""

PREFIX_CHARS = 40
"""How much of a file's content an error message repeats."""

_UNDECODABLE = re.compile("[\udc80-\udcff]")


class LineTooLong(ValueError):
    """A line of a label file longer than :data:`MAX_LINE_CHARS`."""


def open_text(path: str | Path, what: str = "") -> TextIO:
    """``path`` opened for reading as UTF-8 text (BOM dropped, bad bytes kept as surrogates, newlines as they are).

    A special file is refused before it is opened, with a one-line
    ``ValueError`` naming it (``what`` says which file it was meant to be).
    """
    kind = special_file(path)
    if kind is not None:
        raise ValueError(f"{what + ' ' if what else ''}{path} is {kind}, not a regular file")
    return open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")


def lines(handle: TextIO) -> Iterator[str]:
    """The lines of ``handle``, each read with at most :data:`MAX_LINE_CHARS` characters (:class:`LineTooLong`)."""
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS:
            raise LineTooLong(f"a line longer than {MAX_LINE_CHARS} characters")
        yield line


def is_undecodable(fields: Iterable[str]) -> bool:
    """Whether any field holds bytes that are not UTF-8 (kept as surrogates by :func:`open_text`)."""
    return any(not field.isascii() and _UNDECODABLE.search(field) for field in fields)


def prefix(text: str) -> str:
    """The first :data:`PREFIX_CHARS` characters of ``text``, quoted on one line, ``...`` when cut."""
    return repr(text[:PREFIX_CHARS]) + ("..." if len(text) > PREFIX_CHARS else "")


def csv_reader(handle: TextIO) -> Iterator[list[str]]:
    """A ``csv.reader`` over the bounded :func:`lines` of ``handle``."""
    return csv.reader(lines(handle))


def csv_header(reader: Iterator[list[str]], name: str) -> list[str]:
    """The first row of ``reader`` (``[]`` for an empty file); an unreadable one is a one-line ``ValueError``."""
    try:
        return next(reader, [])
    except (csv.Error, LineTooLong) as error:
        raise ValueError(f"cannot read {name}: its header row: {error}") from None


def csv_rows(reader: Iterator[list[str]], needed: int, name: str,
             skipped: SkipLog) -> Iterator[tuple[str, list[str]]]:
    """``(where, row)`` of every non-empty row with at least ``needed`` fields and only UTF-8 bytes.

    ``where`` is ``<name>#row=<n>`` (1-based after the header), the source a
    skip or a sample names; a row with undecodable bytes is counted as
    ``bad_encoding`` and one with fewer fields as ``bad_row``. A row the
    ``csv`` module cannot parse (a field over its size limit) or a line over
    :data:`MAX_LINE_CHARS` stops the file with a one-line ``ValueError``
    naming the row.
    """
    number = 0
    while True:
        number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, LineTooLong) as error:
            raise ValueError(f"cannot read {name}: row {number}: {error}") from None
        if not row:
            continue
        where = f"{name}#row={number}"
        if is_undecodable(row):
            skipped.add("bad_encoding", where)
            continue
        if len(row) < needed:
            skipped.add("bad_row", where)
            continue
        yield where, row
