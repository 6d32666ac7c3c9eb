"""Evaluation of a run: metrics, statistics, figures, Grad-CAM, report pieces, model cards.

``docs/layout.md`` lists its modules. The metrics are re-exported here; the figure and Grad-CAM modules are
imported on demand so that computing metrics does not load TensorFlow.
"""
from csa_keras.evaluation.metrics import (
    PAPER_PSNR_NOTE,
    aggregate_folds,
    classification_metrics,
    normalize_confusion_matrix,
    psnr,
    reconstruction_metrics,
    table1_markdown,
)

__all__ = [
    "PAPER_PSNR_NOTE",
    "aggregate_folds",
    "classification_metrics",
    "normalize_confusion_matrix",
    "psnr",
    "reconstruction_metrics",
    "table1_markdown",
]
