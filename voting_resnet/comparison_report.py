"""The comparison's ``report.md``: the Table-3-style rows, the two answers, the figures.

Written from ``comparison.json`` alone, so a finished or a partial comparison
can be reported again. The two questions of the paper it answers with the
measured intervals and p-values: does voting after a module beat the plain
ResNet-18, and is soft voting better than hard?
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.evaluation.figures import plot_confusion_matrix
from csa_keras.evaluation.report import percent
from csa_keras.utils import files

SIGNIFICANCE = 0.05
"""The p-value below which a difference on the test images is called significant."""


def _label(row: dict[str, Any]) -> str:
    if row["training"] == "baseline":
        return "ResNet-18 baseline"
    if row["split_after"] == 0:
        return "ResNet-18 baseline fine-tuned as the voters (control)"
    return f"split after module {row['split_after']}, {row['training']}, {row['voting']} voting"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table (accuracies in %)."""
    lines = ["| model | training | voting | test accuracy | 95% CI | macro F1 | p vs baseline "
             "| val accuracy | epochs | train img/s | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = "baseline" if r["split_after"] == 0 else f"split after {r['split_after']}"
        model += " (control)" if r["split_after"] == 0 and r["training"] == "fine-tuned" else ""
        speed = r.get("train_images_per_second")
        lines.append(
            f"| {model} | {r['training']} | {r['voting']} | {percent(r['accuracy'])} | "
            f"{100 * r['ci_low']:.2f}–{100 * r['ci_high']:.2f} | {percent(r['f1_macro'])} | "
            f"{_p(r.get('p_vs_baseline'))} | {percent(r.get('val_accuracy'))} | {r['epochs']:g} | "
            f"{'–' if speed is None else f'{speed:.1f}'} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def answers(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The two questions, answered from the rows in a sentence each."""
    base = next((r for r in rows if r["training"] == "baseline"), None)
    control = next((r for r in rows if r["training"] == "fine-tuned" and r["split_after"] == 0), None)
    voters = [r for r in rows if r["split_after"] != 0]
    if base is None or not voters:
        return ["The comparison is not complete yet: no answer."]
    better = [r for r in voters if r["accuracy"] > base["accuracy"]
              and (r["p_vs_baseline"] or 1.0) < SIGNIFICANCE]
    best = max(voters, key=lambda r: r["accuracy"])
    gap = 100 * (best["accuracy"] - base["accuracy"])
    if better:
        first = (f"Yes: {len(better)} of {len(voters)} voters beat the baseline "
                 f"({percent(base['accuracy'])}) with p < {SIGNIFICANCE}; the best, "
                 f"{_label(best)}, by {gap:+.2f} points (p = {_p(best['p_vs_baseline'])}).")
    else:
        first = (f"No voter beats the baseline ({percent(base['accuracy'])}) with p < "
                 f"{SIGNIFICANCE}: the most accurate, {_label(best)}, differs by {gap:+.2f} points "
                 f"(p = {_p(best['p_vs_baseline'])}).")
    pairs = {}
    for r in voters:
        pairs.setdefault((r["training"], r["split_after"]), {})[r["voting"]] = r
    diffs = [(100 * (m["soft"]["accuracy"] - m["hard"]["accuracy"]), m["soft"].get("p_soft_vs_hard"))
             for m in pairs.values() if {"soft", "hard"} <= set(m)]
    soft_wins = sum(d > 0 for d, _ in diffs)
    significant = sum(d > 0 and (p or 1.0) < SIGNIFICANCE for d, p in diffs)
    second = (f"Soft voting is ahead of hard voting for {soft_wins} of {len(diffs)} voters "
              f"(mean difference {np.mean([d for d, _ in diffs]):+.2f} points), significantly "
              f"(p < {SIGNIFICANCE}) for {significant}." if diffs else "No voter has both votes.")
    found = [f"Does any split point beat the baseline? {first}", f"Is soft better than hard? {second}"]
    tuned = [r for r in voters if r["training"] == "fine-tuned"]
    if control is not None and tuned:
        top = max(tuned, key=lambda r: r["accuracy"])
        extra = 100 * (control["accuracy"] - base["accuracy"])
        found.append(
            f"Is a fine-tuned voter's gain the vote or the extra training? The baseline fine-tuned "
            f"with the same recipe scores {percent(control['accuracy'])} ({extra:+.2f} "
            f"points over the baseline, p = {_p(control['p_vs_baseline'])}); the best fine-tuned voter, "
            f"{_label(top)}, is {100 * (top['accuracy'] - control['accuracy']):+.2f} points from it.")
    return found


def write_comparison_report(out: Path, config, dataset, rows: Sequence[dict[str, Any]]) -> Path:
    """``report.md`` with the table, the answers and the confusion matrices of the baseline
    and of the voter chosen on validation accuracy."""
    out = Path(out)
    names = list(dataset.class_names)
    base = next((r for r in rows if r["training"] == "baseline"), None)
    voters = [r for r in rows if r["split_after"] != 0]
    chosen = max(voters, key=lambda r: r["val_accuracy"]) if voters else None
    figures = []
    for row, name in ((base, "confusion_matrix_baseline.png"), (chosen, "confusion_matrix_best.png")):
        if row is not None:
            plot_confusion_matrix(np.asarray(row["confusion_matrix"]), names, out / name,
                                  title=_label(row))
            figures.append((name, _label(row)))
    lines = [
        "# Voting ResNet: split points against the plain ResNet-18",
        "",
        f"- data: `{dataset.name}`, {len(dataset)} images, classes {', '.join(names)}; "
        f"test images {rows[0]['n_test'] if rows else 0}",
        f"- budget `{config.preset}`: baseline {config.epochs} epochs, batch {config.batch_size}, "
        f"Adam {config.lr:g} x {config.lr_decay:g} per epoch; voters fine-tuned "
        f"{config.finetune_epochs} epochs of {config.finetune_images or 'all'} images at "
        f"{config.finetune_lr:g}; precision `{config.precision}`; seed {config.seed}",
        "- every model's epoch chosen on validation vote accuracy (ties: lower loss); 95% CI: "
        "percentile bootstrap of the test accuracy; p: exact McNemar test against the baseline "
        "on the same test images",
        "",
        comparison_table(rows),
        "",
        *[f"- {answer}" for answer in answers(rows)],
    ]
    for name, title in figures:
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    return files.write_text(out / "report.md", "\n".join(lines) + "\n")
