"""The Voting ResNet run report: ``report.md`` and its figures (VRN paper §4).

Soft and hard accuracy, the row-normalised confusion matrix (the paper's
Figures 5-6), a Table-3-style comparison when several split points ran, the
training curves, and Grad-CAM of the voter shown on the whole image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from csa_keras.data.protocols import LEAK_NOTE, holdout_leaks
from csa_keras.evaluation.figures import plot_confusion_matrix, plot_curves, plot_gradcam
from csa_keras.evaluation.gradcam import one_per_class
from csa_keras.evaluation.report import mean_std, per_class_table, percent, skipped_section
from csa_keras.utils import files
from voting_resnet.gradcam import voter_gradcam
from voting_resnet.layers.voting import vote

PAPER_TABLE3 = {  # split_after: (AffectNet soft, hard, RAF-DB soft, hard), validation accuracy
    1: (63.69, 63.14, 85.88, 85.06),
    2: (63.51, 62.34, 85.31, 84.90),
    3: (62.80, 62.34, 85.31, 84.73),
}


def comparison_markdown(rows: list[dict]) -> str:
    """Table 3 of the paper, measured: soft and hard accuracy per split point (and fold)."""
    has_val = any("val_accuracy_soft" in r for r in rows)
    has_fold = any("fold" in r for r in rows)
    head = "| " + ("fold | " if has_fold else "") + "split after | " + \
        ("val soft | val hard | " if has_val else "") + \
        "test soft | test hard | s/epoch | paper RAF-DB val soft / hard |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s = r["split_after"]
        paper = PAPER_TABLE3.get(s)
        cells = [str(r.get("fold", ""))] if has_fold else []
        cells.append("baseline" if s == 0 else f"module {s}")
        if has_val:
            cells += [percent(r.get("val_accuracy_soft")), percent(r.get("val_accuracy_hard"))]
        cells += [percent(r.get("test_accuracy_soft")), percent(r.get("test_accuracy_hard")),
                  f"{r.get('seconds_per_epoch', 0):.1f}",
                  f"{paper[2]:.2f}% / {paper[3]:.2f}%" if paper else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_vrn_report(out: Path, config, dataset, outcomes: list, metrics: dict) -> Path:
    """Write ``confusion_matrix.png``, ``curves.png``, ``gradcam.png`` and ``report.md``.

    ``outcomes`` are the splits' :class:`~csa_keras.training.SplitOutcome`;
    the figures show the reported model (fold 1's under k-fold): Grad-CAM
    explains its vote on one test face per class, and the curves are the
    chosen split point's training with validation and, when it was
    retrained, the retraining.
    """
    details = outcomes[0].details
    model, logits, curves = details.model, details.logits, details.curves
    test_index = outcomes[0].test_index

    out = Path(out)
    names = list(dataset.class_names)
    kfold = "folds" in metrics
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), names,
                          out / "confusion_matrix.png",
                          title=f"{metrics['voting']} voting" + (", pooled over folds" if kfold else ""))
    plot_curves(curves, out / "curves.png")
    figures = ["confusion_matrix.png", "curves.png"]
    if config.gradcam:
        labels = dataset.labels[test_index]
        pick = one_per_class(labels, len(names), seed=config.seed)
        if len(pick):
            faces = dataset.subset(test_index[pick]).scaled()
            predicted = vote(logits[pick], metrics["voting"]).argmax(axis=1)
            maps = voter_gradcam(model, faces, predicted)
            titles = [f"true {names[labels[i]]}\npred {names[p]}" for i, p in zip(pick, predicted)]
            plot_gradcam(faces, maps, titles, out / "gradcam.png")
            figures.append("gradcam.png")

    split = metrics["split_after"]
    n_folds = len(metrics.get("folds", []))
    lines = [
        "# Voting ResNet run report",
        "",
        "ResNet-18 for 48x48 with in-graph crop-and-mirror voting (Gómez-Sirvent et al., 2023).",
        "",
        "## Setup",
        "",
        f"- data: `{dataset.name}` (format `{dataset.format}`), {len(dataset)} images, "
        f"{dataset.num_classes} classes: {', '.join(names)}",
        f"- protocol: `{metrics['protocol']}`" + (f", {n_folds} folds" if kfold else "")
        + f"; train {metrics['n_train']}, validation {metrics['n_val']}"
        + (" per fold (mean)" if kfold else "")
        + f", test {metrics['n_test']}" + (" in all" if kfold else ""),
        f"- model{' (fold 1)' if kfold else ''}: "
        f"split after {'none (baseline)' if split == 0 else f'module {split}'}"
        f", {metrics['voting']} voting; split points tried: {list(config.split_after)}"
        + (", best on validation retrained on train + validation"
           if metrics["retrained_on_train_val"] else ""),
        f"- recipe `{config.preset}`: {config.epochs} epochs, batch {config.batch_size}, Adam "
        f"{config.lr:g} x {config.lr_decay:g} per epoch, augmentation "
        f"{'on' if config.augment else 'off'}, balancing {'on' if config.balance else 'off'}, "
        f"seed {config.seed}",
    ]
    if "init_from" in metrics:
        init = metrics["init_from"]
        lines.append(f"- initialised from `{init['path']}`: {init['layers_copied']} layers copied, "
                     f"{init['layers_skipped']} left as initialised")
    lines.append(f"- precision: `{metrics.get('precision_policy', 'float32')}`; wall time: "
                 f"{metrics['seconds']:.0f} s")
    if holdout_leaks(metrics["protocol"], dataset):
        lines += ["", f"> {LEAK_NOTE}"]
    lines += [
        "",
        "## Test results" + (" (mean ± std over folds)" if kfold else ""),
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy, soft voting | {mean_std(metrics, 'accuracy_soft')} |",
        f"| accuracy, hard voting | {mean_std(metrics, 'accuracy_hard')} |",
        f"| balanced accuracy ({metrics['voting']}) | {mean_std(metrics, 'balanced_accuracy')} |",
        f"| F1 macro ({metrics['voting']}) | {mean_std(metrics, 'f1_macro')} |",
        "",
        "Per-class accuracy (the diagonal of the row-normalised confusion matrix"
        + (", pooled over folds" if kfold else "") + "):",
        "",
        *per_class_table(metrics["per_class_accuracy"]),
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Split points (the paper's Table 3)",
        "",
        comparison_markdown(metrics["comparison"]),
        "",
        "## Training curves",
        "",
        "![curves](curves.png)",
    ]
    if "gradcam.png" in figures:
        lines += ["", "## Grad-CAM of the voter", "",
                  "Each crop's Grad-CAM map is put back where its crop came from (mirrored "
                  "crops flipped back) and the maps are averaged over the views.", "",
                  "![gradcam](gradcam.png)"]
    if kfold:
        lines += ["", "The top-level `model.keras` is fold 1's; every fold's model is in its "
                      "`foldNN/` folder."]
    lines += ["", "## Skipped inputs", "",
              skipped_section(dataset.skipped.as_dict(), dataset.skipped.describe())]
    return files.write_text(out / "report.md", "\n".join(lines) + "\n")
