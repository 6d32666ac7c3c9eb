"""Pieces every task's ``report.md`` shares: numbers as text, the skipped inputs, Grad-CAM.

Each task writes its own report (what was run, its metrics, its figures)
from these, so a figure is formatted the same way in every run directory.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from csa_keras.evaluation.figures import plot_gradcam
from csa_keras.evaluation.gradcam import gradcam, one_per_class


def percent(value: float | None) -> str:
    """A fraction in [0, 1] as a percentage with two decimals, ``n/a`` for ``None``."""
    return "n/a" if value is None else f"{100 * value:.2f}%"


def mean_std(metrics: dict, key: str, as_percent: bool = True) -> str:
    """``metrics[key]`` with its ``<key>_std`` over folds when there is one."""
    value = metrics.get(key)
    if value is None:
        return "n/a"
    std = metrics.get(f"{key}_std")
    text = percent(value) if as_percent else f"{value:.2f}"
    if std is not None:
        text += f" ± {100 * std:.2f}" if as_percent else f" ± {std:.2f}"
    return text


def skipped_section(skipped: dict[str, int], lines: Sequence[str] = ()) -> str:
    """The report's table of skipped inputs by reason, and the first paths."""
    if not skipped:
        return "Nothing was skipped.\n"
    body = "| reason | count |\n|---|---|\n" + "".join(
        f"| {reason} | {count} |\n" for reason, count in sorted(skipped.items()))
    if lines:
        body += "\n" + "".join(f"- {line}\n" for line in lines)
    return body


def gradcam_figure(classifier, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                   layer_name: str, path: Path, seed: int = 0, predict=None) -> Path | None:
    """Grad-CAM of one test face per class (tf-keras-vis), overlaid, as a PNG."""
    index = one_per_class(labels, len(class_names), seed=seed)
    if len(index) == 0:
        return None
    faces = images[index]
    if predict is None:
        predicted = keras.ops.convert_to_numpy(classifier(faces, training=False)).argmax(axis=1)
    else:
        predicted = predict(faces)
    maps = gradcam(classifier, faces, predicted, layer_name)
    titles = [f"true {class_names[labels[i]]}\npred {class_names[p]}"
              for i, p in zip(index, predicted)]
    return plot_gradcam(faces, maps, titles, path)


def per_class_table(per_class_accuracy: dict[str, float | None],
                    header: str = "accuracy") -> list[str]:
    """The per-class accuracies (recall of each class) as Markdown table lines."""
    return ["| class | " + header + " |", "|---|---|",
            *[f"| {name} | {percent(value)} |" for name, value in per_class_accuracy.items()]]
