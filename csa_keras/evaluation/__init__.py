"""Evaluation of a run.

- :mod:`~csa_keras.evaluation.metrics`: classification metrics, PSNR, fold
  aggregation, the paper's Table 1 (scikit-learn and numpy only).
- :mod:`~csa_keras.evaluation.figures`: the PNG figures of a run directory
  (matplotlib).
- :mod:`~csa_keras.evaluation.gradcam`: Grad-CAM heatmaps (tf-keras-vis;
  imports TensorFlow).

The metrics are re-exported here; the figure and Grad-CAM modules are
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
