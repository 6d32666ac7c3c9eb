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
from voting_resnet.comparison_stats import is_control

SIGNIFICANCE = 0.05
"""The p-value below which a difference on the test images is called significant."""


def _significant(row: dict[str, Any], key: str) -> bool:
    """Below :data:`SIGNIFICANCE` after Holm's correction across rows (the raw value for rows
    written before the correction)."""
    value = row.get(f"{key}_holm", row.get(key))
    return value is not None and value < SIGNIFICANCE


def _label(row: dict[str, Any]) -> str:
    if row["training"] == "baseline":
        return "ResNet-18 baseline"
    if row["split_after"] == 0:
        return "ResNet-18 baseline fine-tuned as the voters (control)"
    return f"split after module {row['split_after']}, {row['training']}, {row['voting']} voting"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _p_pair(row: dict[str, Any], key: str) -> str:
    """``raw (Holm)``, or the raw value alone for rows completed before the correction."""
    raw, corrected = row.get(key), row.get(f"{key}_holm")
    if raw is None or corrected is None:
        return _p(raw)
    return f"{_p(raw)} ({_p(corrected)})"


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table (accuracies in %; p-values raw, then Holm-corrected)."""
    lines = ["| model | training | voting | test accuracy | 95% CI | macro F1 | balanced acc. "
             "| p vs baseline (Holm) | p vs control (Holm) | val accuracy | epochs "
             "| train img/s | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = "baseline" if r["split_after"] == 0 else f"split after {r['split_after']}"
        model += " (control)" if is_control(r) else ""
        model += " (chosen)" if r.get("chosen_on_validation") else ""
        speed = r.get("train_images_per_second")
        lines.append(
            f"| {model} | {r['training']} | {r['voting']} | {percent(r['accuracy'])} | "
            f"{100 * r['ci_low']:.2f}–{100 * r['ci_high']:.2f} | {percent(r['f1_macro'])} | "
            f"{percent(r.get('balanced_accuracy'))} | {_p_pair(r, 'p_vs_baseline')} | "
            f"{_p_pair(r, 'p_vs_control')} | {percent(r.get('val_accuracy'))} | {r['epochs']:g} | "
            f"{'–' if speed is None else f'{speed:.1f}'} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def counts_table(rows: Sequence[dict[str, Any]], class_names: Sequence[str]) -> str:
    """How many test images each row predicts as each class, beside the true counts: a gain
    that only moves predictions toward one class shows here."""
    if not rows:
        return ""
    truth = np.asarray(rows[0]["confusion_matrix"]).sum(axis=1).astype(int).tolist()
    lines = ["| model | training | voting | " + " | ".join(class_names) + " |",
             "|---|---|---|" + "---|" * len(class_names),
             "| (true) | | | " + " | ".join(map(str, truth)) + " |"]
    for r in rows:
        counts = r.get("predicted_counts") or np.asarray(r["confusion_matrix"]).sum(axis=0).tolist()
        model = "baseline" if r["split_after"] == 0 else f"split after {r['split_after']}"
        lines.append(f"| {model} | {r['training']} | {r['voting']} | "
                     + " | ".join(str(int(c)) for c in counts) + " |")
    return "\n".join(lines)


def answers(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The paper's two questions, answered from the rows in a sentence each, then the control's
    question for the fine-tuned voters and the paper's design for those trained from scratch."""
    base = next((r for r in rows if r["training"] == "baseline"), None)
    control = next((r for r in rows if r["training"] == "fine-tuned" and r["split_after"] == 0), None)
    voters = [r for r in rows if r["split_after"] != 0]
    if base is None or not voters:
        return ["The comparison is not complete yet: no answer."]
    better = [r for r in voters if r["accuracy"] > base["accuracy"]
              and _significant(r, "p_vs_baseline")]
    best = max(voters, key=lambda r: r["accuracy"])
    gap = 100 * (best["accuracy"] - base["accuracy"])
    if better:
        first = (f"Yes: {len(better)} of {len(voters)} voters beat the baseline "
                 f"({percent(base['accuracy'])}) with p < {SIGNIFICANCE} after Holm's correction; "
                 f"the most accurate, {_label(best)}, by {gap:+.2f} points "
                 f"(p = {_p_pair(best, 'p_vs_baseline')}).")
    else:
        first = (f"No voter beats the baseline ({percent(base['accuracy'])}) with p < "
                 f"{SIGNIFICANCE} after Holm's correction: the most accurate, {_label(best)}, "
                 f"differs by {gap:+.2f} points (p = {_p_pair(best, 'p_vs_baseline')}).")
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
            f"points over the baseline, p = {_p_pair(control, 'p_vs_baseline')}); the best "
            f"fine-tuned voter, {_label(top)}, is "
            f"{100 * (top['accuracy'] - control['accuracy']):+.2f} points from it "
            f"(p = {_p_pair(top, 'p_vs_control')}).")
    scratch = [r for r in voters if r["training"] == "from-scratch"]
    if scratch:
        top = max(scratch, key=lambda r: r["accuracy"])
        verdict = "does not differ from it"
        if _significant(top, "p_vs_baseline"):
            verdict = "beats it" if top["accuracy"] > base["accuracy"] else "falls below it"
        found.append(
            f"Does the paper's design, a voter trained from scratch with the baseline's recipe and "
            f"epochs, beat the baseline trained alike? The best, {_label(top)}, scores "
            f"{percent(top['accuracy'])}, {100 * (top['accuracy'] - base['accuracy']):+.2f} points "
            f"from the baseline (p = {_p_pair(top, 'p_vs_baseline')}): it {verdict} with p < "
            f"{SIGNIFICANCE} after Holm's correction.")
    return found


def recipe(config) -> str:
    """The optimisation of the baseline in words."""
    if getattr(config, "schedule", "exponential") == "cosine":
        optimizer = (f"AdamW {config.lr:g} (weight decay {config.weight_decay:g})"
                     if config.weight_decay else f"Adam {config.lr:g}")
        plural = "" if config.warmup_epochs == 1 else "s"
        words = f"{optimizer}, {config.warmup_epochs:g} warm-up epoch{plural} then a cosine to zero"
    else:
        words = f"Adam {config.lr:g} x {config.lr_decay:g} per epoch"
    if getattr(config, "label_smoothing", 0):
        words += f", label smoothing {config.label_smoothing:g}"
    if getattr(config, "flip", False):
        words += ", horizontal flip"
    return words


def write_comparison_report(out: Path, config, dataset: dict[str, Any],
                            rows: Sequence[dict[str, Any]]) -> Path:
    """``report.md`` with the table, the answers and the confusion matrices of the baseline
    and of the voter chosen on validation accuracy."""
    out = Path(out)
    names = list(dataset["class_names"])
    base = next((r for r in rows if r["training"] == "baseline"), None)
    voters = [r for r in rows if r["split_after"] != 0]
    chosen = next((r for r in voters if r.get("chosen_on_validation")), None)
    if chosen is None and voters:
        chosen = max(voters, key=lambda r: r["val_accuracy"])
    figures = []
    for row, name in ((base, "confusion_matrix_baseline.png"), (chosen, "confusion_matrix_best.png")):
        if row is not None:
            plot_confusion_matrix(np.asarray(row["confusion_matrix"]), names, out / name,
                                  title=_label(row))
            figures.append((name, _label(row)))
    lines = [
        "# Voting ResNet: split points against the plain ResNet-18",
        "",
        f"- data: `{dataset['name']}`, {dataset['n_images']} images, classes {', '.join(names)}; "
        f"test images {rows[0]['n_test'] if rows else 0}",
        f"- recipe `{config.preset}`: baseline {config.epochs} epochs, batch {config.batch_size}, "
        f"{recipe(config)}; voters fine-tuned from the baseline (this project's design) "
        f"{config.finetune_epochs} epochs of {config.finetune_images or 'all'} images at "
        f"{config.finetune_lr:g}"
        + _scratch_note(config, rows)
        + f"; precision `{config.precision}`; seed {config.seed}",
        "- every model's epoch chosen on validation vote accuracy (ties: lower loss); 95% CI: "
        "percentile bootstrap of the test accuracy; p: exact McNemar test against the baseline, "
        "and against the control, on the same test images, then in brackets Holm's correction "
        "across the rows; the voter marked chosen has the best validation accuracy",
        "",
        comparison_table(rows),
        "",
        *[f"- {answer}" for answer in answers(rows)],
        "",
        "## Predicted classes",
        "",
        counts_table(rows, names),
    ]
    for name, title in figures:
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    return files.write_text(out / "report.md", "\n".join(lines) + "\n")


def _scratch_note(config, rows: Sequence[dict[str, Any]]) -> str:
    """The recipe line's words on the voters trained from scratch, those still to come named."""
    asked = tuple(getattr(config, "scratch_split_after", ()))
    if not asked:
        return ""
    scored = {r["split_after"] for r in rows if r["training"] == "from-scratch"}
    missing = [s for s in asked if s not in scored]
    return (f"; voters after module {', '.join(map(str, asked))} also trained from scratch with "
            "the baseline's recipe (the paper's design)"
            + (f", not yet scored after module {', '.join(map(str, missing))}" if missing else ""))
