"""The comparison's statistics across rows: what one row alone cannot say.

A row of ``comparison.json`` is scored on its own (accuracy, its interval,
McNemar against the baseline). Read together, the rows need more
(:func:`complete_rows`):

- ``p_vs_control``: the exact McNemar test of a voter against the control,
  the baseline fine-tuned with the voters' recipe, so that a gain from the
  extra training is not taken for a gain from the vote (from the rows' test
  predictions in ``predictions.json``);
- ``p_vs_baseline_holm`` and ``p_vs_control_holm``: both corrected with
  Holm's step-down method across every row that was tested, since among ten
  comparisons one at p < 0.05 is expected by chance alone;
- ``balanced_accuracy`` and ``predicted_counts`` (the columns of the
  confusion matrix): a gain that only moves predictions toward a frequent
  class raises accuracy but not balanced accuracy, and shows in the counts;
- ``chosen_on_validation``: the voter with the best validation accuracy,
  the one a user would ship, chosen without looking at the test images.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from csa_keras.evaluation.statistics import holm, mcnemar_p


def row_key(row: Mapping[str, Any]) -> str:
    """``training/split_after/voting``: a row's name in ``predictions.json``."""
    return f"{row['training']}/{row['split_after']}/{row['voting']}"


def model_folder(training: str, split_after: int) -> str:
    """The folder of a comparison that holds a row's model: ``baseline``, ``split<k>`` (fine-tuned,
    the control ``split0``) or ``scratch<k>``; test-time rows use the baseline's."""
    if training == "fine-tuned":
        return f"split{split_after}"
    if training == "from-scratch":
        return f"scratch{split_after}"
    return "baseline"


def is_control(row: Mapping[str, Any]) -> bool:
    """The baseline fine-tuned with the voters' recipe."""
    return row["training"] == "fine-tuned" and row["split_after"] == 0


def balanced_accuracy(confusion: np.ndarray) -> float:
    """Mean recall over the classes with test images (rows true, columns predicted)."""
    confusion = np.asarray(confusion, dtype=float)
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present]))


def complete_rows(rows: Sequence[dict[str, Any]],
                  predictions: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows with the statistics of the module docstring added (new dicts).

    ``predictions`` is ``predictions.json`` (``labels`` and ``rows``); without
    it, or for a row it lacks, ``p_vs_control`` is ``None``.
    """
    rows = [dict(r) for r in rows]
    if not isinstance(predictions, Mapping):
        predictions = {}
    predicted = predictions.get("rows")
    predicted = dict(predicted) if isinstance(predicted, Mapping) else {}
    labels = predictions.get("labels")
    control = next((r for r in rows if is_control(r)), None)
    control_correct = None
    if control is not None and labels is not None and row_key(control) in predicted:
        control_correct = np.asarray(predicted[row_key(control)]) == np.asarray(labels)
    for row in rows:
        confusion = np.asarray(row["confusion_matrix"])
        row.setdefault("balanced_accuracy", balanced_accuracy(confusion))
        row["predicted_counts"] = confusion.sum(axis=0).astype(int).tolist()
        row["p_vs_control"] = None
        if (control_correct is not None and row["split_after"] != 0
                and row_key(row) in predicted):
            correct = np.asarray(predicted[row_key(row)]) == np.asarray(labels)
            row["p_vs_control"] = mcnemar_p(correct, control_correct)
    for key in ("p_vs_baseline", "p_vs_control"):
        for row, corrected in zip(rows, holm([r.get(key) for r in rows])):
            row[f"{key}_holm"] = corrected
    voters = [r for r in rows if r["split_after"] != 0]
    chosen = max(voters, key=lambda r: r.get("val_accuracy") or 0.0) if voters else None
    for row in rows:
        row["chosen_on_validation"] = row is chosen
    return rows
