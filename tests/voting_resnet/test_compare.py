"""``python -m voting_resnet.compare``: every row, intervals and p-values, resume, the report."""
import json
import shutil

import pytest
from commands import call_main, run_module

from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.evaluation.figures import read_history_csv
from voting_resnet.comparison import RECIPES, TRAININGS, rewrite_report, run_comparison
from voting_resnet.comparison_report import answers
from voting_resnet.comparison_stats import model_folder


def tiny_faces():
    return make_synthetic_dataset(seed=0, n_subjects=4, images_per_class=1, size=16, colour=True)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "run"
    config = RECIPES["smoke"].replace(gradcam=False, test_size=0.25, scratch_split_after=(3,))
    lines = []
    rows = run_comparison(config, output=out, dataset=tiny_faces(), verbose=0, log=lines.append)
    return out, config, rows, lines


@pytest.mark.heavy
def test_every_row_is_present_with_intervals_and_p_values(comparison):
    out, _, rows, _ = comparison
    keys = {(r["training"], r["split_after"], r["voting"]) for r in rows}
    expected = {("baseline", 0, "none"), ("fine-tuned", 0, "none")} | {
        (t, s, v) for t in ("test-time", "fine-tuned") for s in (1, 2, 3) for v in ("soft", "hard")
    } | {("from-scratch", 3, "soft"), ("from-scratch", 3, "hard")}
    assert {r["training"] for r in rows} == set(TRAININGS)
    assert keys == expected and len(rows) == len(expected)
    for row in rows:
        assert 0.0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1.0
        assert 0.0 <= row["f1_macro"] <= 1.0
        if row["training"] == "baseline":
            assert row["p_vs_baseline"] is None and row["epochs"] >= 1
        elif row["split_after"] == 0:
            assert 0.0 <= row["p_vs_baseline"] <= 1.0 and "p_soft_vs_hard" not in row
        else:
            assert 0.0 <= row["p_vs_baseline"] <= 1.0 and 0.0 <= row["p_soft_vs_hard"] <= 1.0
        assert row["n_test"] == sum(map(sum, row["confusion_matrix"]))
        assert row["predicted_counts"] == [sum(col) for col in zip(*row["confusion_matrix"])]
        assert 0.0 <= row["balanced_accuracy"] <= 1.0
        if row["split_after"] == 0:
            assert row["p_vs_control"] is None
        else:
            assert 0.0 <= row["p_vs_control"] <= row["p_vs_control_holm"] <= 1.0
    assert sum(r["chosen_on_validation"] for r in rows) == 1
    assert json.loads((out / "comparison.json").read_text()) == rows
    saved = json.loads((out / "predictions.json").read_text())
    assert set(saved["rows"]) == {f"{t}/{s}/{v}" for t, s, v in expected}
    assert all(len(p) == len(saved["test"]) == len(saved["labels"]) for p in saved["rows"].values())
    for name in ("report.md", "config.json", "splits.json", "history.csv",
                 "confusion_matrix_baseline.png", "confusion_matrix_best.png",
                 "baseline/model.keras", "split1/model.keras", "split3/model.keras",
                 "scratch3/model.keras"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "Does any split point beat the baseline?" in report and "| split after 2 |" in report
    assert "| baseline (control) | fine-tuned |" in report and "the vote or the extra training?" in report
    assert "| split after 3 | from-scratch | soft |" in report and "the paper's design" in report
    assert "## Predicted classes" in report and "| (true) |" in report
    assert not (out / ".backup").exists()


@pytest.mark.heavy
def test_test_time_rows_cost_no_training_and_fine_tuned_rows_report_their_epochs(comparison):
    out, _, rows, _ = comparison
    for row in rows:
        if row["training"] == "test-time":
            assert row["epochs"] == 0 and row["train_images_per_second"] is None
        if row["training"] == "fine-tuned":
            assert row["epochs"] > 0 and row["train_images_per_second"] > 0
        if row["training"] in ("fine-tuned", "from-scratch"):
            (history,) = read_history_csv(out / model_folder(row["training"], row["split_after"])
                                          / "history.csv").values()
            assert row["seconds"] == round(sum(history["epoch_seconds"]), 1)


@pytest.mark.heavy
def test_resume_of_a_finished_comparison_trains_nothing(comparison):
    out, config, rows, _ = comparison
    lines = []
    again = run_comparison(config, output=out, dataset=tiny_faces(), verbose=0, log=lines.append,
                           resume=True)
    assert again == rows
    assert not any("training" in line or "fine-tuning" in line for line in lines)


@pytest.mark.heavy
def test_resume_after_a_lost_row_measures_only_that_row(comparison):
    out, config, rows, _ = comparison
    kept = [r for r in rows if not (r["training"] == "fine-tuned" and r["split_after"] == 3)]
    (out / "comparison.json").write_text(json.dumps(kept))
    lines = []
    again = run_comparison(config, output=out, dataset=tiny_faces(), verbose=0, log=lines.append,
                           resume=True)
    assert len(again) == len(rows)
    assert [line for line in lines if "fine-tuning" in line] == [
        "fine-tuning the voter after module 3 from the baseline"]


@pytest.mark.heavy
def test_report_is_written_again_from_the_folder_alone(comparison, tmp_path):
    out, _, rows, _ = comparison
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.md").unlink()
    added = ("p_vs_control", "p_vs_control_holm", "p_vs_baseline_holm", "predicted_counts",
             "chosen_on_validation")
    bare = [{k: v for k, v in r.items() if k not in added} for r in rows]
    for row in bare:
        if row["training"] == "from-scratch":
            row["seconds"] = 1.0
    (copy / "comparison.json").write_text(json.dumps(bare))
    phases = read_history_csv(copy / "history.csv")
    expected = [dict(r, seconds=round(sum(phases[model_folder(r["training"], r["split_after"])]
                                              ["epoch_seconds"]), 1))
                if r["training"] in ("fine-tuned", "from-scratch") else r for r in rows]
    assert rewrite_report(copy) == expected
    assert json.loads((copy / "comparison.json").read_text()) == expected
    assert "## Predicted classes" in (copy / "report.md").read_text()
    (copy / "predictions.json").unlink()
    assert all(r["p_vs_control"] is None for r in rewrite_report(copy))
    with pytest.raises(ValueError, match="holds no comparison to report"):
        rewrite_report(tmp_path)


@pytest.mark.heavy
def test_the_row_chosen_on_validation_packs_as_a_model_in_the_box(comparison, tmp_path):
    import zipfile

    import h5py
    import keras
    import numpy as np

    from voting_resnet.comparison_stats import row_key
    from voting_resnet.pretrained import chosen_row, package_comparison

    out, _, rows, _ = comparison
    dest, row = package_comparison(out, "python -m voting_resnet.compare --recipe smoke",
                                   "synthetic faces", tmp_path / "box" / "vrn_tiny")
    assert row == chosen_row(rows)
    assert row["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    metrics = json.loads((dest / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(row["accuracy"])
    assert metrics["confusion_matrix"] == row["confusion_matrix"]
    assert metrics["comparison_row"] == row_key(row) and metrics["weights_stored_as"] == "float16"
    card = (dest / "MODEL_CARD.md").read_text()
    assert "chosen among the comparison's rows on validation accuracy" in card
    with zipfile.ZipFile(dest / "model.keras") as archive, \
            h5py.File(archive.open("model.weights.h5"), "r") as weights:
        dtypes = set()
        weights.visit(lambda name: dtypes.add(getattr(weights[name], "dtype", None)))
    assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
    model = keras.models.load_model(dest / "model.keras")
    assert all(w.dtype == "float32" for w in model.weights)
    with pytest.raises(ValueError, match="key must name a row"):
        package_comparison(out, "c", "l", tmp_path / "other", key="scratch/9/soft")


def test_answers_name_a_significant_winner():
    base = {"training": "baseline", "split_after": 0, "voting": "none", "accuracy": 0.50,
            "p_vs_baseline": None}
    rows = [base] + [
        {"training": "fine-tuned", "split_after": 1, "voting": v, "accuracy": a, "p_vs_baseline": p,
         "p_soft_vs_hard": 0.01} for v, a, p in (("soft", 0.56, 0.001), ("hard", 0.52, 0.3))]
    first, second = answers(rows)
    assert first.startswith("Does any split point beat the baseline? Yes: 1 of 2")
    assert "for 1 of 1 voters" in second and "significantly (p < 0.05) for 1" in second
    control = {"training": "fine-tuned", "split_after": 0, "voting": "none", "accuracy": 0.53,
               "p_vs_baseline": 0.04}
    third = answers([*rows, control])[2]
    assert "scores 53.00% (+3.00 points over the baseline, p = 0.04)" in third
    assert third.endswith("is +3.00 points from it (p = –).")


def test_answers_judge_the_papers_design_against_the_baseline():
    base = {"training": "baseline", "split_after": 0, "voting": "none", "accuracy": 0.60,
            "p_vs_baseline": None}
    scratch = [{"training": "from-scratch", "split_after": 3, "voting": v, "accuracy": a,
                "p_vs_baseline": p, "p_vs_baseline_holm": h}
               for v, a, p, h in (("soft", 0.57, 0.001, 0.004), ("hard", 0.56, 0.0001, 0.0005))]
    last = answers([base, *scratch])[-1]
    assert last.startswith("Does the paper's design")
    assert "split after module 3, from-scratch, soft voting, scores 57.00%, -3.00 points" in last
    assert "(p = 0.001 (0.004)): it falls below it" in last
    scratch[0].update(accuracy=0.61, p_vs_baseline=0.3, p_vs_baseline_holm=1.0)
    assert "+1.00 points" in answers([base, *scratch])[-1]
    assert answers([base, *scratch])[-1].endswith("it does not differ from it with p < 0.05 after Holm's correction.")
    tuned = {**scratch[0], "training": "fine-tuned"}
    assert not any(a.startswith("Does the paper's design") for a in answers([base, tuned]))


def test_answers_judge_significance_after_holm():
    base = {"training": "baseline", "split_after": 0, "voting": "none", "accuracy": 0.50,
            "p_vs_baseline": None}
    rows = [base] + [
        {"training": "test-time", "split_after": 1, "voting": v, "accuracy": a, "p_vs_baseline": p,
         "p_vs_baseline_holm": h} for v, a, p, h in (("soft", 0.52, 0.015, 0.09),
                                                      ("hard", 0.51, 0.2, 0.6))]
    first = answers(rows)[0]
    assert "No voter beats the baseline (50.00%) with p < 0.05 after Holm's correction" in first
    assert "(p = 0.015 (0.09))" in first


def test_help_documents_the_rows_recipes_and_resume():
    done = run_module("voting_resnet.compare", "--help", timeout=120)
    assert done.returncode == 0
    text = done.stdout
    for word in ("test-time", "fine-tuned", "--recipe", "recipes:", "cpu", "paper", "--resume",
                 "bootstrap", "McNemar"):
        assert word in text, word


def test_a_bad_recipe_is_one_line():
    done = run_module("voting_resnet.compare", "--recipe", "gpu", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("python -m voting_resnet.compare: error:")


def test_ctrl_c_during_a_comparison_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    import voting_resnet.comparison
    from voting_resnet.compare import main

    def interrupted(config, output, **kwargs):
        (tmp_path / "run").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(voting_resnet.comparison, "run_comparison", interrupted)
    code, out, err = call_main(main, ["--recipe", "smoke", "--output", tmp_path / "run"], capsys)
    assert code == 130 and out == ""
    assert err.splitlines() == [
        f"python -m voting_resnet.compare: interrupted; to continue, run the same command with "
        f"--output {tmp_path / 'run'} --resume"]
