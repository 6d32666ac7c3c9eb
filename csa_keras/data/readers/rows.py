"""Rows of the CSV files some formats keep their labels in (FER2013, AffectNet)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from csa_keras.data.dataset import SkipLog


def csv_rows(reader: Iterable[list[str]], needed: int, name: str,
             skipped: SkipLog) -> Iterator[tuple[str, list[str]]]:
    """``(where, row)`` of every non-empty row with at least ``needed`` fields.

    ``where`` is ``<name>#row=<n>`` (1-based after the header), the source a
    skip or a sample names; a row with fewer fields is counted as ``bad_row``.
    """
    for number, row in enumerate(reader, start=1):
        if not row:
            continue
        where = f"{name}#row={number}"
        if len(row) < needed:
            skipped.add("bad_row", where)
            continue
        yield where, row
