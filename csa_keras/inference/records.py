"""Prediction records as the commands write them: rounded JSON, flat rows, a pandas DataFrame.

A record (:data:`~csa_keras.inference.predictor.RECORD_KEYS`) nests its box
and its probabilities; this module is the one place that flattens it, so
``predict --output-format csv``, the HTTP service and the Python API give
the same columns:

``source, frame, time_s, face, status, crop, x, y, w, h, label, score,
p_<class> ..., error``

:func:`records_frame` makes that a DataFrame in one call (pandas is the
optional ``pandas`` extra)::

    from csa_keras.inference.predictor import Predictor
    from csa_keras.inference.records import records_frame
    frame = records_frame(Predictor.pretrained().predict_paths("photos/"))
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

RECORD_FORMATS = ("jsonl", "csv")
"""The files ``predict`` writes its records to: JSON lines (one nested record a line) or CSV (the flat columns)."""

DIGITS = 6
"""Decimals of the scores and probabilities the commands print."""

FLAT_KEYS = ("source", "frame", "time_s", "face", "status", "crop", "x", "y", "w", "h", "label", "score")
"""The flat columns before the ``p_<class>`` probabilities and the final ``error`` column."""


def _round(value: Any, digits: int = DIGITS) -> float | None:
    return None if value is None else round(float(value), digits)


def rounded_record(record: dict, digits: int = DIGITS) -> dict:
    """``record`` with its score and probabilities rounded to ``digits`` decimals, as commands print it."""
    record = dict(record)
    record["score"] = _round(record["score"], digits)
    if record["probabilities"] is not None:
        record["probabilities"] = {k: _round(v, digits) for k, v in record["probabilities"].items()}
    return record


def flat_columns(class_names: Sequence[str]) -> list[str]:
    """The column names of :func:`flat_row` for a model of ``class_names``."""
    return [*FLAT_KEYS, *(f"p_{name}" for name in class_names), "error"]


def flat_row(record: dict, class_names: Sequence[str], digits: int = DIGITS) -> list[Any]:
    """``record`` as one row of :func:`flat_columns` (``None`` where a record has no value)."""
    box = record["box"] or [None] * 4
    probabilities = record["probabilities"] or {}
    return [record["source"], record["frame"], record["time_s"], record["face"], record["status"],
            record["crop"], *box, record["label"], _round(record["score"], digits),
            *(_round(probabilities.get(name), digits) for name in class_names), record["error"]]


def records_frame(records: Iterable[dict], class_names: Sequence[str] | None = None):
    """The records as a ``pandas.DataFrame`` of :func:`flat_columns`, one row per record.

    ``class_names`` orders the ``p_<class>`` columns; by default, the classes
    of the first record with probabilities, in its order. Needs pandas
    (``pip install 'csa-keras[pandas]'``): without it, one ``ImportError``
    line saying so.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("records_frame needs pandas: pip install 'csa-keras[pandas]'") from None
    records = list(records)
    if class_names is None:
        first = next((r["probabilities"] for r in records if r["probabilities"]), {})
        class_names = list(first)
    rows = [flat_row(record, class_names) for record in records]
    frame = pd.DataFrame(rows, columns=flat_columns(class_names))
    for column in ("frame", "face", "x", "y", "w", "h"):
        frame[column] = frame[column].astype("Int64")
    return frame
