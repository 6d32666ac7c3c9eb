"""The published results hold together, and the docs quote them right.

Each ``comparison.json`` is checked against its own confusion matrices
(accuracy, macro F1, balanced accuracy and predicted-class counts recomputed
with scikit-learn), its Holm-corrected p-values against the correction of
its raw ones, its bootstrap intervals against the binomial width, and
its chosen voter against the validation accuracies. Its ``report.md`` must
be what the report writer renders from it, and every figure of the Table 3
quoted in docs/results.md must round from it: adding rows to a comparison
changes every Holm-corrected value, and these tests say which quote is stale.
The learning curves quoted there must round from the run's ``history.csv``.
Likewise the benchmark report of record, ``benchmarks/results/performance.md``,
must be what ``benchmarks/run.py`` renders from its JSON, and the table of
docs/performance.md that quotes it must round from that JSON.
"""
import importlib
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from csa_keras.evaluation.figures import read_history_csv
from csa_keras.evaluation.statistics import holm
from voting_resnet.comparison_report import comparison_table, counts_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
COMPARISONS = sorted(RESULTS.glob("*/comparison.json"))
DOCS = ROOT / "docs" / "results.md"
CONVERGED = "## Voting ResNet on FER2013: the paper's Table 3 at the converged baseline"
CPU_BUDGET = "## Voting ResNet on FER2013: the paper's Table 3 at a CPU budget"
IN_THE_BOX = "## The Voting ResNet in the box"
BENCH = ROOT / "benchmarks" / "results"
EVERY_ROW = "### Every row in one run"
NUMBER = r"\d+(?:\.\d+)?(?:e-?\d+)?"


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _card(name: str) -> dict:
    """The ``metrics.json`` of a model in the box."""
    return _json(ROOT / "csa_keras" / "pretrained" / name / "metrics.json")


def _check_confusion(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """A row's or a card's accuracy, macro F1 and balanced accuracy against its confusion matrix."""
    true, predicted = _labels(record["confusion_matrix"])
    classes = list(range(len(record["confusion_matrix"])))
    assert len(true) == record["n_test"]
    assert np.mean(true == predicted) == pytest.approx(record["accuracy"], abs=1e-12)
    assert f1_score(true, predicted, labels=classes, average="macro", zero_division=0) \
        == pytest.approx(record["f1_macro"], abs=1e-9)
    assert balanced_accuracy_score(true, predicted) == pytest.approx(record["balanced_accuracy"], abs=1e-9)
    return true, predicted


def _labels(confusion) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted labels, one per test image, that give ``confusion``."""
    confusion = np.asarray(confusion)
    k = len(confusion)
    true, predicted = np.divmod(np.arange(k * k), k)
    counts = confusion.ravel()
    return np.repeat(true, counts), np.repeat(predicted, counts)


def _close(shown: str, value: float, scale: float = 1.0) -> bool:
    """``shown`` is ``value * scale`` rounded to the digits it shows (at least two significant)."""
    number = Decimal(shown).as_tuple()
    unit = 10.0 ** (number.exponent - max(0, 2 - len(number.digits)))
    return abs(float(shown) - value * scale) <= unit / 2 + 1e-12


@pytest.fixture(params=COMPARISONS, ids=[p.parent.name for p in COMPARISONS])
def comparison(request) -> Path:
    return request.param


def test_results_hold_the_published_comparisons():
    assert {p.parent.name for p in COMPARISONS} >= {"vrn-compare-fer2013", "vrn-converge-fer2013"}


def test_every_row_agrees_with_its_confusion_matrix(comparison):
    for row in _json(comparison):
        _, predicted = _check_confusion(row)
        assert row["predicted_counts"] == np.bincount(predicted, minlength=len(row["confusion_matrix"])).tolist()


def test_every_interval_is_a_bootstrap_of_its_accuracy(comparison):
    for row in _json(comparison):
        p, n = row["accuracy"], row["n_test"]
        assert row["ci_low"] <= p <= row["ci_high"]
        binomial = 2 * 1.96 * np.sqrt(p * (1 - p) / n)
        assert row["ci_high"] - row["ci_low"] == pytest.approx(binomial, rel=0.15)


def test_the_holm_corrections_follow_from_the_raw_p_values(comparison):
    rows = _json(comparison)
    for key in ("p_vs_baseline", "p_vs_control"):
        expected = holm([r.get(key) for r in rows])
        assert [r.get(f"{key}_holm") for r in rows] == pytest.approx(expected, abs=1e-15)


def test_the_chosen_voter_has_the_best_validation_accuracy(comparison):
    rows = _json(comparison)
    voters = [r for r in rows if r["split_after"] != 0]
    chosen = [r for r in rows if r["chosen_on_validation"]]
    assert len(chosen) == 1 and chosen[0]["split_after"] != 0
    assert chosen[0]["val_accuracy"] == max(r["val_accuracy"] for r in voters)


def test_the_report_is_rendered_from_the_comparison(comparison):
    rows = _json(comparison)
    report = (comparison.parent / "report.md").read_text(encoding="utf-8")
    names = re.search(r"classes ([a-z, ]+);", report).group(1).split(", ")
    assert len(names) == len(rows[0]["confusion_matrix"])
    assert comparison_table(rows) in report
    assert counts_table(rows, names) in report


def _table(heading: str, page: Path = DOCS, header: str = "|") -> list[list[str]]:
    """The cells of the first table under ``heading`` in ``page`` whose header line starts with
    ``header``, header and rule left out."""
    section = page.read_text(encoding="utf-8").split(heading, 1)[1].split("\n##", 1)[0]
    table = re.search(rf"^{re.escape(header)}.*\n(?:\|.*\n?)+", section, re.MULTILINE)
    assert table, (heading, header)
    lines = table.group(0).splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _row(rows: list[dict], training: str, split_after: int) -> dict:
    voting = "none" if split_after == 0 else "soft"
    return next(r for r in rows if (r["training"], r["split_after"], r["voting"])
                == (training, split_after, voting))


def _quoted_row(rows: list[dict], model: str, training: str) -> dict:
    """The comparison row a line of a docs table names (its voters are soft voting)."""
    if model.startswith("ResNet-18 baseline"):
        return _row(rows, "baseline", 0)
    if model.startswith("control"):
        return _row(rows, "fine-tuned", 0)
    training = "from-scratch" if training.startswith("from scratch") else training
    return _row(rows, training, int(re.fullmatch(r"split after module (\d)", model).group(1)))


def _check_accuracy(cell: str, row: dict) -> None:
    accuracy, low, high = re.fullmatch(rf"({NUMBER})% \[({NUMBER}), ({NUMBER})\].*", cell).groups()
    assert _close(accuracy, row["accuracy"], 100), (cell, row["accuracy"])
    assert _close(low, row["ci_low"], 100) and _close(high, row["ci_high"], 100), cell


def _check_p(cell: str, row: dict, key: str) -> None:
    """``raw (Holm)``, or ``raw`` alone, each rounded from the row; empty where the row has none."""
    if not cell:
        assert row.get(key) is None or row["training"] == "baseline"
        return
    found = re.fullmatch(rf"({NUMBER})(?: \(({NUMBER})\))?", cell)
    assert found, cell
    raw, corrected = found.groups()
    assert _close(raw, row[key]), (cell, key, row[key])
    if corrected is not None:
        assert _close(corrected, row[f"{key}_holm"]), (cell, f"{key}_holm", row[f"{key}_holm"])


def test_the_converged_table_quotes_its_comparison():
    rows = _json(RESULTS / "vrn-converge-fer2013" / "comparison.json")
    quoted = _table(CONVERGED)
    assert len(quoted) >= 8
    for model, training, test, f1, balanced, p_base, p_control, validation in quoted:
        row = _quoted_row(rows, model, training)
        _check_accuracy(test, row)
        assert _close(f1.rstrip("%"), row["f1_macro"], 100), (model, training, f1)
        assert _close(balanced.rstrip("%"), row["balanced_accuracy"], 100), (model, training, balanced)
        _check_p(p_base, row, "p_vs_baseline")
        _check_p(p_control, row, "p_vs_control")
        assert _close(validation.rstrip("%"), row["val_accuracy"], 100), (model, training, validation)


def test_the_cpu_budget_table_quotes_its_comparison():
    rows = _json(RESULTS / "vrn-compare-fer2013" / "comparison.json")
    quoted = _table(CPU_BUDGET)
    assert len(quoted) == 5
    for model, test_time, tuned, p_base, p_control in quoted:
        if test_time:
            row = _quoted_row(rows, model, "test-time")
            _check_accuracy(test_time, row)
            vote_p = re.search(rf"\(p ({NUMBER}) \(({NUMBER})\)\)", test_time)
            if vote_p:
                _check_p(f"{vote_p.group(1)} ({vote_p.group(2)})", row, "p_vs_baseline")
        if tuned:
            row = _quoted_row(rows, model, "fine-tuned")
            _check_accuracy(tuned, row)
            _check_p(p_base, row, "p_vs_baseline")
            if row["p_vs_control"] is not None:
                _check_p(p_control, row, "p_vs_control")


def _check_epoch(history: dict, epoch: str, rate: str, train: str, validation: str, seconds: str,
                 speed: str, per_epoch: int) -> None:
    """One quoted epoch of a learning curve against its row of ``history.csv``."""
    r = {key: values[int(epoch) - 1] for key, values in history.items()}
    assert _close(rate, r["learning_rate"]), (epoch, rate, r["learning_rate"])
    assert _close(train.rstrip("%"), r["vote_accuracy"], 100), (epoch, train)
    assert _close(validation.rstrip("%"), r["val_vote_accuracy"], 100), (epoch, validation)
    assert _close(seconds.replace(",", ""), r["epoch_seconds"]), (epoch, seconds)
    assert _close(speed, per_epoch / r["epoch_seconds"]), (epoch, speed)


def test_the_learning_curves_quote_the_run_history():
    history = read_history_csv(RESULTS / "vrn-converge-fer2013" / "history.csv")
    baseline, scratch = history["baseline"], history["scratch3"]
    per_epoch = _card("vrn_fer2013")["n_train"]
    quoted = _table(IN_THE_BOX, header="| epoch | images seen")
    assert [int(cells[0]) for cells in quoted] == list(range(1, len(baseline["epoch_seconds"]) + 1))
    for epoch, seen, *cells in quoted:
        assert int(seen.replace(",", "")) == int(epoch) * per_epoch
        _check_epoch(baseline, epoch, *cells, per_epoch)
    quoted = _table(IN_THE_BOX, header="| epoch | learning rate")
    assert [int(cells[0]) for cells in quoted] == list(range(1, len(scratch["epoch_seconds"]) + 1))
    for epoch, rate, train, validation, baseline_validation, seconds, speed in quoted:
        _check_epoch(scratch, epoch, rate, train, validation, seconds, speed, per_epoch)
        assert _close(baseline_validation.rstrip("%"), baseline["val_vote_accuracy"][int(epoch) - 1], 100)


@pytest.mark.parametrize("name", ["csa_fer2013", "vrn_fer2013"])
def test_a_model_in_the_box_agrees_with_its_confusion_matrix(name):
    metrics = _card(name)
    assert len(metrics["class_names"]) == len(metrics["confusion_matrix"])
    true, predicted = _check_confusion(metrics)
    recall = [np.mean(predicted[true == k] == k) for k in range(len(metrics["class_names"]))]
    assert recall == pytest.approx([metrics["per_class_accuracy"][c] for c in metrics["class_names"]], abs=1e-12)
    assert metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"]


def test_the_results_page_quotes_the_cards_of_the_models_in_the_box():
    quoted = {re.search(r"`(\w+_fer2013)`", model).group(1): cells
              for model, *cells in _table(IN_THE_BOX) if "_fer2013`" in model}
    assert set(quoted) == {"csa_fer2013", "vrn_fer2013"}
    for name, (_, test, f1, balanced) in quoted.items():
        metrics = _card(name)
        _check_accuracy(test, {"accuracy": metrics["accuracy"], "ci_low": metrics["accuracy_ci_low"],
                               "ci_high": metrics["accuracy_ci_high"]})
        assert _close(f1.rstrip("%"), metrics["f1_macro"], 100), (name, f1)
        assert _close(balanced.rstrip("%"), metrics["balanced_accuracy"], 100), (name, balanced)


def test_the_benchmark_report_of_record_is_rendered_from_its_json(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(ROOT / "benchmarks"), *sys.path])
    run = importlib.import_module("run")
    assert run.render(_json(BENCH / "performance.json")) == (BENCH / "performance.md").read_text(encoding="utf-8")


def test_the_performance_page_quotes_the_run_of_record():
    rows = {(r["label"], r["mode"], r["precision"], r["isa"]): r
            for r in _json(BENCH / "performance.json")["sections"]["models"]["rows"]}
    avx2 = {(r["label"], r["mode"]): r
            for r in _json(BENCH / "avx2-zen3" / "performance.json")["sections"]["models"]["rows"]}
    quoted = _table(EVERY_ROW, ROOT / "docs" / "performance.md")
    assert len(quoted) == 10
    for label, mode, *cells, zen3 in quoted:
        runs = [("float32", "avx512 (native)"), ("float32", "avx2 (capped)"),
                ("mixed_bfloat16", "avx512 (native)")]
        for (precision, isa), speeds, ratio in zip(runs, cells[::2], cells[1::2]):
            row = rows[(label, mode, precision, isa)]
            keras, reference = speeds.split(" / ")
            assert _close(keras, row["keras_median"]) and _close(reference, row["reference_median"]), speeds
            assert _close(ratio.rstrip("x"), row["median_ratio"]), (label, mode, precision, isa, ratio)
        assert _close(zen3.rstrip("x"), avx2[(label, mode)]["median_ratio"]), (label, mode, zen3)


def test_the_rounding_check_tells_a_double_rounding():
    assert _close("0.048", 0.04848)
    assert not _close("0.049", 0.04848)
    assert _close("1.0e-5", 1.0194e-5) and _close("1", 1.0) and not _close("1", 0.74)
    assert _close("61.59", 0.615896, 100) and not _close("61.60", 0.615896, 100)
