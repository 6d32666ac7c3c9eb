"""The human-readable run report (``report.md``) and its figures (SPEC §5).

The report states what was run (data, protocol, settings), the metrics with
the per-class table in the form of the CSA paper's Table 1, the
reconstruction quality with the note on the paper's PSNR, what was skipped,
and embeds ``confusion_matrix.png``, ``curves.png``, ``reconstructions.png``
and ``gradcam.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from csa_keras.training import rundir


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _mean_std(metrics: dict, key: str, percent: bool = True) -> str:
    value = metrics.get(key)
    if value is None:
        return "n/a"
    std = metrics.get(f"{key}_std")
    text = _pct(value) if percent else f"{value:.2f}"
    if std is not None:
        text += f" ± {100 * std:.2f}" if percent else f" ± {std:.2f}"
    return text


def skipped_section(skipped: dict[str, int], lines: Sequence[str] = ()) -> str:
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
    from csa_keras.evaluation.figures import plot_gradcam
    from csa_keras.evaluation.gradcam import gradcam, one_per_class

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


def write_csa_report(out: Path, config, dataset, results: list, metrics: dict[str, Any]) -> Path:
    """Write the CSA figures and ``report.md`` into the run directory."""
    from csa_keras.evaluation.figures import (
        plot_confusion_matrix,
        plot_curves,
        plot_reconstructions,
    )
    from csa_keras.evaluation.metrics import PAPER_PSNR_NOTE, table1_markdown
    from csa_keras.models.csa import LAST_CONV_LAYER

    out = Path(out)
    names = list(dataset.class_names)
    first = results[0]
    x_test = dataset.subset(first.test_index).scaled()
    y_test = dataset.labels[first.test_index]

    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), names,
                          out / "confusion_matrix.png",
                          title="pooled over folds" if len(results) > 1 else None)
    plot_curves(first.history, out / "curves.png")
    plot_reconstructions(x_test, first.reconstructions, out / "reconstructions.png")
    figures = ["confusion_matrix.png", "curves.png", "reconstructions.png"]
    if config.gradcam and gradcam_figure(first.classifier, x_test, y_test, names,
                                         LAST_CONV_LAYER, out / "gradcam.png", seed=config.seed):
        figures.append("gradcam.png")

    kfold = len(results) > 1
    lines = [
        "# CSA run report",
        "",
        "Convolutional sparse autoencoder (Mohana & Subashini): unsupervised "
        "pretraining, then the encoder fine-tuned with Dense(128) + softmax.",
        "",
        "## Setup",
        "",
        f"- data: `{dataset.name}` (format `{dataset.format}`), {len(dataset)} images, "
        f"{dataset.num_classes} classes: {', '.join(names)}",
        f"- protocol: `{config.protocol}`"
        + (f", {len(results)} folds" if kfold else "")
        + f"; train {metrics['n_train']}{' per fold (mean)' if kfold else ''}, "
        f"test {metrics['n_test']}{' in all' if kfold else ''}; validation carved from "
        f"train: {int(100 * config.val_fraction)}%",
        f"- preset `{config.preset}`: pretraining {config.pretrain_epochs} epochs, fine-tuning "
        f"{config.finetune_epochs} epochs, batch {config.batch_size}, Adam "
        f"{config.pretrain_lr:g} / {config.finetune_lr:g}, sparsity {config.sparsity:g}, "
        f"filters {tuple(config.filters)}, closure `{config.closure}`, seed {config.seed}",
        f"- wall time: {metrics.get('seconds', 0):.0f} s",
    ]
    if config.protocol == "holdout" and dataset.subjects is not None:
        from csa_keras.data.protocols import LEAK_NOTE

        lines += ["", f"> {LEAK_NOTE}"]
    lines += [
        "",
        "## Classification",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, label in [("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                       ("precision_macro", "precision (macro)"),
                       ("recall_macro", "recall (macro)"), ("f1_macro", "F1 (macro)"),
                       ("precision_weighted", "precision (weighted)"),
                       ("recall_weighted", "recall (weighted)"),
                       ("f1_weighted", "F1 (weighted)")]:
        if key in metrics:
            lines.append(f"| {label} | {_mean_std(metrics, key)} |")
    lines += [
        "",
        "Per-class accuracy (recall of each class) beside the paper's Table 1:",
        "",
        table1_markdown(metrics["per_class_accuracy"]),
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Reconstruction",
        "",
        f"- reconstruction MSE on the test images: {_mean_std(metrics, 'reconstruction_mse', False)}"
        if metrics.get("reconstruction_mse") is None
        else f"- reconstruction MSE on the test images: {metrics['reconstruction_mse']:.5f}",
        f"- PSNR (MAX = 1, mean over test images): {_mean_std(metrics, 'psnr_db', False)} dB",
        "",
        f"> {PAPER_PSNR_NOTE}",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "## Training curves",
        "",
        "![curves](curves.png)",
    ]
    if "gradcam.png" in figures:
        lines += [
            "",
            "## Grad-CAM",
            "",
            f"tf-keras-vis Grad-CAM on `{LAST_CONV_LAYER}`, one test face per class, "
            "for the predicted class.",
            "",
            "![gradcam](gradcam.png)",
        ]
    if kfold:
        lines += ["", "## Folds", "", "| fold | n_test | accuracy | F1 (macro) | PSNR (dB) |",
                  "|---|---|---|---|---|"]
        for fold in metrics.get("folds", []):
            lines.append(f"| {fold.get('fold')} | {fold.get('n_test')} | "
                         f"{_pct(fold.get('accuracy'))} | {_pct(fold.get('f1_macro'))} | "
                         f"{fold.get('psnr_db', float('nan')):.2f} |")
        lines += ["", "The top-level `autoencoder.keras` and `classifier.keras` are fold 1's; "
                      "every fold's models are in its `foldNN/` folder."]
    lines += ["", "## Skipped inputs", "",
              skipped_section(dataset.skipped.as_dict(), dataset.skipped.describe())]
    return rundir.write_text(out / "report.md", "\n".join(lines) + "\n")
