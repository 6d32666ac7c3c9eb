"""The CSA run report: ``report.md`` and its figures (CSA paper §4).

It states what was run (data, protocol, settings), the classification
metrics with the per-class table in the form of the paper's Table 1, the
reconstruction quality with the note on the paper's PSNR, what was skipped,
and embeds ``confusion_matrix.png``, ``curves.png``, ``reconstructions.png``
and ``gradcam.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.csa.model import LAST_CONV_LAYER
from csa_keras.data.protocols import LEAK_NOTE, holdout_leaks
from csa_keras.evaluation.figures import plot_confusion_matrix, plot_curves, plot_reconstructions
from csa_keras.evaluation.metrics import PAPER_PSNR_NOTE, SCALAR_METRICS, table1_markdown
from csa_keras.evaluation.report import gradcam_figure, mean_std, percent, skipped_section
from csa_keras.utils import files


def write_csa_report(out: Path, config, dataset, outcomes: list, metrics: dict[str, Any]) -> Path:
    """Write the CSA figures and ``report.md`` into the run directory.

    ``outcomes`` are the splits' :class:`~csa_keras.training.experiment.SplitOutcome`;
    the figures show the first split's (fold 1's under k-fold) models.
    """
    out = Path(out)
    names = list(dataset.class_names)
    first = outcomes[0].details
    test_index = outcomes[0].test_index
    x_test = dataset.subset(test_index).scaled()
    y_test = dataset.labels[test_index]

    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), names,
                          out / "confusion_matrix.png",
                          title="pooled over folds" if len(outcomes) > 1 else None)
    plot_curves(first.history, out / "curves.png")
    plot_reconstructions(x_test, first.reconstructions, out / "reconstructions.png")
    figures = ["confusion_matrix.png", "curves.png", "reconstructions.png"]
    if config.gradcam and gradcam_figure(first.classifier, x_test, y_test, names,
                                         LAST_CONV_LAYER, out / "gradcam.png", seed=config.seed):
        figures.append("gradcam.png")

    kfold = len(outcomes) > 1
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
        + (f", {len(outcomes)} folds" if kfold else "")
        + f"; train {metrics['n_train']}{' per fold (mean)' if kfold else ''}, "
        f"test {metrics['n_test']}{' in all' if kfold else ''}; validation carved from "
        f"train: {int(100 * config.val_fraction)}%",
        f"- recipe `{config.preset}`: pretraining {config.pretrain_epochs} epochs, fine-tuning "
        f"{config.finetune_epochs} epochs, batch {config.batch_size}, Adam "
        f"{config.pretrain_lr:g} / {config.finetune_lr:g}, sparsity {config.sparsity:g}, "
        f"filters {tuple(config.filters)}, closure `{config.closure}`, seed {config.seed}",
        f"- precision: `{metrics.get('precision_policy', 'float32')}`; wall time: "
        f"{metrics.get('seconds', 0):.0f} s",
    ]
    if holdout_leaks(config.protocol, dataset):
        lines += ["", f"> {LEAK_NOTE}"]
    lines += [
        "",
        "## Classification",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, label in SCALAR_METRICS.items():
        if key in metrics:
            lines.append(f"| {label} | {mean_std(metrics, key)} |")
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
        f"- reconstruction MSE on the test images: {mean_std(metrics, 'reconstruction_mse', False)}"
        if metrics.get("reconstruction_mse") is None
        else f"- reconstruction MSE on the test images: {metrics['reconstruction_mse']:.5f}",
        f"- PSNR (MAX = 1, mean over test images): {mean_std(metrics, 'psnr_db', False)} dB",
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
                         f"{percent(fold.get('accuracy'))} | {percent(fold.get('f1_macro'))} | "
                         f"{fold.get('psnr_db', float('nan')):.2f} |")
        lines += ["", "The top-level `autoencoder.keras` and `classifier.keras` are fold 1's; "
                      "every fold's models are in its `foldNN/` folder."]
    lines += ["", "## Skipped inputs", "",
              skipped_section(dataset.skipped.as_dict(), dataset.skipped.describe())]
    return files.write_text(out / "report.md", "\n".join(lines) + "\n")
