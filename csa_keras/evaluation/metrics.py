"""Classification and reconstruction metrics of a run.

Classification figures come from scikit-learn with the standard definitions
(the CSA paper's accuracy formula (1) has a typo, TP + FN on top).
Every value returned is a plain Python ``int``/``float``/``list``/``dict`` so
``metrics.json`` can be written with :mod:`json` as is.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from csa_keras.data.dataset import canonical_class

PSNR_CAP_DB = 100.0
"""Per-image PSNR of a perfect reconstruction (MSE 0, PSNR infinite) counts as this in means."""


def _paper_psnr(mse: float, max_value: float) -> float:
    return 10.0 * math.log10(max_value**2 / mse)


PEAK_255_OFFSET_DB = 20.0 * math.log10(255.0)
"""What a peak of 255 adds to the PSNR of images in [0, 1]: 20·log10(255) = 48.13 dB."""

PAPER_TRAIN_LOSS = 0.0228
PAPER_VAL_LOSS = 0.0428
PAPER_PSNR_DB = 70.06

CKPLUS48_HOLDOUT_PSNR_DB = 22.47
"""This project's CSA (``code6``, ``paper`` preset) on the CK+48 hold-out, MAX = 1 (docs/results.md)."""

PAPER_PSNR_NOTE = (
    f"The CSA paper (§4.3) reports {PAPER_PSNR_DB} dB PSNR, on faces it scales to [0, 1] "
    f"(§3.1), beside an autoencoder training loss of {PAPER_TRAIN_LOSS} (validation "
    f"{PAPER_VAL_LOSS}). With MAX = 1, {PAPER_PSNR_DB} dB would need an MSE of "
    f"{10 ** (-PAPER_PSNR_DB / 10):.1e}. The reading that reconciles it is a peak of 255 on "
    f"[0, 1] images: PSNR at MAX = 255 is the PSNR at MAX = 1 plus 20·log10(255) = "
    f"{PEAK_255_OFFSET_DB:.2f} dB, so {PAPER_PSNR_DB} dB is "
    f"{PAPER_PSNR_DB - PEAK_255_OFFSET_DB:.2f} dB at MAX = 1 (an MSE of about "
    f"{10 ** (-(PAPER_PSNR_DB - PEAK_255_OFFSET_DB) / 10):.4f}), and this project's "
    f"{CKPLUS48_HOLDOUT_PSNR_DB} dB on the CK+48 hold-out reads "
    f"{CKPLUS48_HOLDOUT_PSNR_DB + PEAK_255_OFFSET_DB:.2f} dB at MAX = 255. Its loss of "
    f"{PAPER_TRAIN_LOSS} would then include the sparsity penalties, as the loss Keras reports "
    f"for a model with activity regularisers does, and not only the MSE: an MSE of "
    f"{PAPER_TRAIN_LOSS} alone gives {_paper_psnr(PAPER_TRAIN_LOSS, 1.0):.1f} dB "
    f"({_paper_psnr(PAPER_TRAIN_LOSS, 255.0):.1f} dB at MAX = 255). We report PSNR with "
    f"MAX = 1 (psnr_db) and the same MSE at MAX = 255 beside it (psnr_peak255), the figure "
    f"to set against the paper's."
)
"""How the paper's PSNR reads against this project's, in one paragraph for reports."""

PAPER_TABLE1 = {
    "anger": ("Anger", 96.0),
    "contempt": ("Contempt", 100.0),
    "disgust": ("Disgust", 100.0),
    "fear": ("Fear", 90.0),
    "happiness": ("Happy", 100.0),
    "sadness": ("Sadness", 100.0),
    "surprise": ("Surprise", 98.0),
}
"""Per-class accuracy (%) of the CSA on CK+, the paper's Table 1, in the paper's row order."""

PAPER_TABLE1_AVERAGE = 98.0
"""The Average row of the paper's Table 1 (the mean of its seven figures is 97.71)."""

SCALAR_METRICS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "precision_macro": "precision (macro)",
    "recall_macro": "recall (macro)",
    "f1_macro": "F1 (macro)",
    "precision_weighted": "precision (weighted)",
    "recall_weighted": "recall (weighted)",
    "f1_weighted": "F1 (weighted)",
}
"""The classification metrics of ``metrics.json`` that are one number, with their names in reports."""


def normalize_confusion_matrix(cm: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Row-normalise a confusion matrix (rows = true classes); a row with no images stays zero."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square. Received: cm with shape {cm.shape}")
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def classification_metrics(y_true: Sequence[int] | np.ndarray,
                           y_pred: Sequence[int] | np.ndarray,
                           class_names: Sequence[str]) -> dict:
    """Accuracy, precision, recall, F1, per-class accuracy and confusion matrices.

    Labels are integers into ``class_names``. Macro averages run over the
    classes present in ``y_true`` or ``y_pred`` (scikit-learn's default), so a
    class with no test image and no prediction (a fold without contempt) does
    not count as a zero; ``balanced_accuracy`` is scikit-learn's mean recall
    over the classes present in ``y_true``. ``per_class_accuracy`` is the
    paper's Table 1 "accuracy of each class": the recall of that class, the
    diagonal of the row-normalised confusion matrix, ``None`` for a class with
    no test image. ``confusion_matrix`` has a row and column for every class
    (rows true, columns predicted).
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    names = [str(n) for n in class_names]
    k = len(names)
    if k < 1:
        raise ValueError("class_names is empty")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no test labels to evaluate")
    for what, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"{what} holds labels outside 0..{k - 1} ({k} class names)")

    labels = list(range(k))
    present = np.union1d(y_true, y_pred).tolist()
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    out = {
        "class_names": names,
        "n_test": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=average, zero_division=0)
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
               "support": int(s[i])}
        for i, name in enumerate(names)
    }
    out["per_class_accuracy"] = {
        name: (float(r[i]) if s[i] > 0 else None) for i, name in enumerate(names)}
    out["confusion_matrix"] = cm.astype(int).tolist()
    out["confusion_matrix_normalized"] = normalize_confusion_matrix(cm).tolist()
    return out


def psnr(x: np.ndarray, x_hat: np.ndarray, max_value: float = 1.0) -> np.ndarray:
    """Per-image peak signal-to-noise ratio, ``10·log10(MAX² / MSE)`` in dB (paper eq. 5).

    ``x`` and ``x_hat`` are batches ``(N, ...)``; the MSE of each image runs
    over all its pixels and channels. A perfect reconstruction gives ``inf``.
    """
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"images {x.shape} and reconstructions {x_hat.shape} differ in shape")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of images (N, ...). Received: x with shape {x.shape}")
    if not max_value > 0:
        raise ValueError(f"max_value must be positive. Received: max_value={max_value!r}")
    mse = np.mean((x - x_hat) ** 2, axis=tuple(range(1, x.ndim)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(max_value**2 / mse)


def reconstruction_metrics(x: np.ndarray, x_hat: np.ndarray, max_value: float = 1.0) -> dict:
    """Reconstruction MSE and PSNR of an autoencoder on test images.

    ``reconstruction_mse`` is the mean over images of the per-image MSE;
    ``psnr_db`` the mean over images of the per-image PSNR (MAX = 1 for
    [0, 1] images), a perfect reconstruction counting as
    :data:`PSNR_CAP_DB` (100 dB) instead of infinity; ``psnr_db_of_mean_mse``
    the PSNR of the mean MSE (never above ``psnr_db``, by Jensen's
    inequality); ``psnr_peak255`` the same mean per-image PSNR with a peak of
    255 on the same MSE, ``psnr_db + 20·log10(255 / max_value)`` (48.13 dB
    more for [0, 1] images; a perfect reconstruction counts as
    :data:`PSNR_CAP_DB` plus that), the paper's reading of PSNR
    (:data:`PAPER_PSNR_NOTE`). ``n_perfect`` counts the images reconstructed
    exactly.
    """
    per_image = psnr(x, x_hat, max_value)
    x = np.asarray(x, dtype=np.float64)
    mse = np.mean((x - np.asarray(x_hat, dtype=np.float64)) ** 2, axis=tuple(range(1, x.ndim)))
    mean_mse = float(mse.mean())
    psnr_db = float(np.minimum(per_image, PSNR_CAP_DB).mean())
    return {
        "reconstruction_mse": mean_mse,
        "psnr_db": psnr_db,
        "psnr_peak255": psnr_db + 20.0 * math.log10(255.0 / max_value),
        "psnr_db_of_mean_mse": (float(10.0 * np.log10(max_value**2 / mean_mse))
                                if mean_mse > 0 else PSNR_CAP_DB),
        "n_perfect": int(np.sum(mse == 0)),
    }


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def aggregate_folds(fold_metrics: Sequence[Mapping]) -> dict:
    """Mean ± std over cross-validation folds and the pooled confusion matrix.

    For every key whose value is a number in every fold: ``<name>`` is the
    mean over folds and ``<name>_std`` the sample standard deviation
    (``ddof=1``; 0.0 for a single fold). ``n_test`` is the sum over folds
    (the size of the pooled test set). ``confusion_matrix`` is the sum of the
    fold matrices, and ``pooled`` holds the metrics of
    :func:`classification_metrics` computed from it; ``per_class_accuracy``
    and ``confusion_matrix_normalized`` at the top level are the pooled ones
    (a fold may lack a class), with the fold mean and std of each class in
    ``per_class_accuracy_mean`` / ``per_class_accuracy_std`` (over the folds
    that have the class). ``folds`` is the list given.
    """
    folds = [dict(f) for f in fold_metrics]
    if not folds:
        raise ValueError("aggregate_folds needs at least one fold")
    out: dict = {"n_folds": len(folds)}
    ddof = 1 if len(folds) > 1 else 0
    for key, value in folds[0].items():
        if key == "n_test" or not _is_scalar(value):
            continue
        if not all(key in f and _is_scalar(f[key]) for f in folds):
            continue
        values = np.array([float(f[key]) for f in folds])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=ddof))

    if all("confusion_matrix" in f for f in folds):
        matrices = [np.asarray(f["confusion_matrix"], dtype=np.int64) for f in folds]
        if len({m.shape for m in matrices}) != 1:
            raise ValueError("folds have confusion matrices of different shapes: "
                             "they must share the same classes")
        pooled_cm = np.sum(matrices, axis=0)
        names = folds[0].get("class_names") or list(folds[0].get("per_class_accuracy", {}))
        if len(names) != len(pooled_cm):
            names = [str(i) for i in range(len(pooled_cm))]
        rows, cols = np.nonzero(pooled_cm)
        counts = pooled_cm[rows, cols]
        pooled = classification_metrics(np.repeat(rows, counts), np.repeat(cols, counts), names)
        out["class_names"] = list(names)
        out["confusion_matrix"] = pooled_cm.tolist()
        out["confusion_matrix_normalized"] = pooled["confusion_matrix_normalized"]
        out["per_class_accuracy"] = pooled["per_class_accuracy"]
        out["pooled"] = pooled
        out["n_test"] = int(pooled_cm.sum())
    elif all(_is_scalar(f.get("n_test")) for f in folds):
        out["n_test"] = int(sum(int(f["n_test"]) for f in folds))

    if all(isinstance(f.get("per_class_accuracy"), Mapping) for f in folds):
        mean, std = {}, {}
        for name in folds[0]["per_class_accuracy"]:
            values = np.array([f["per_class_accuracy"][name] for f in folds
                               if f["per_class_accuracy"].get(name) is not None], dtype=float)
            mean[name] = float(values.mean()) if len(values) else None
            std[name] = (float(values.std(ddof=1 if len(values) > 1 else 0))
                         if len(values) else None)
        out["per_class_accuracy_mean"] = mean
        out["per_class_accuracy_std"] = std
        out.setdefault("per_class_accuracy", mean)
    out["folds"] = folds
    return out


def table1_markdown(per_class_accuracy: Mapping[str, float | None],
                    class_order: Sequence[str] | None = None) -> str:
    """Per-class accuracy as the paper's Table 1 (CSA column), beside ours, in Markdown.

    ``per_class_accuracy`` maps class names (canonical or dataset names such
    as ``happy``) to fractions in [0, 1] (``None`` = no test image). Rows
    follow the paper's order (Anger, Contempt, Disgust, Fear, Happy, Sadness,
    Surprise), then any other class present (neutral), then ``Average``: the
    mean of our rows that have a value, and the paper's printed 98.00 (the
    mean of its seven figures is 97.71). ``class_order`` overrides the rows.
    """
    ours: dict[str, float | None] = {}
    labels: dict[str, str] = {}
    for name, value in per_class_accuracy.items():
        key = canonical_class(name) or str(name)
        ours[key] = None if value is None else float(value)
        labels[key] = PAPER_TABLE1[key][0] if key in PAPER_TABLE1 else str(name).capitalize()
    if class_order is None:
        rows = list(PAPER_TABLE1) + [k for k in ours if k not in PAPER_TABLE1]
    else:
        rows = [canonical_class(n) or str(n) for n in class_order]
    for key in rows:
        labels.setdefault(key, PAPER_TABLE1[key][0] if key in PAPER_TABLE1 else key.capitalize())

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = ["| Expression | This run (%) | Paper CSA (%) |", "|---|---:|---:|"]
    values = []
    for key in rows:
        value = ours.get(key)
        if value is not None:
            values.append(100.0 * value)
        paper = PAPER_TABLE1[key][1] if key in PAPER_TABLE1 else None
        lines.append(f"| {labels[key]} | {cell(None if value is None else 100.0 * value)} "
                     f"| {cell(paper)} |")
    average = float(np.mean(values)) if values else None
    lines.append(f"| **Average** | {cell(average)} | {cell(PAPER_TABLE1_AVERAGE)} |")
    return "\n".join(lines) + "\n"
