"""The comparison's statistics across rows: control tests, Holm, balanced accuracy, counts."""
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from csa_keras.evaluation.statistics import mcnemar_p
from voting_resnet.comparison_stats import complete_rows, row_key


def _row(training, split_after, voting, truth, predicted, val_accuracy, p_vs_baseline):
    return {"training": training, "split_after": split_after, "voting": voting,
            "accuracy": float(np.mean(truth == predicted)), "val_accuracy": val_accuracy,
            "p_vs_baseline": p_vs_baseline,
            "confusion_matrix": confusion_matrix(truth, predicted, labels=[0, 1, 2]).tolist()}


def test_complete_rows_by_hand():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    guess = {name: np.where(rng.uniform(size=300) < q, truth, rng.integers(0, 3, 300))
             for name, q in (("base", 0.5), ("control", 0.6), ("voter", 0.75), ("zero", 0.0))}
    guess["zero"][:] = 0  # every prediction one class: a prior, not a model
    rows = [_row("baseline", 0, "none", truth, guess["base"], 0.5, None),
            _row("fine-tuned", 0, "none", truth, guess["control"], 0.6, 0.02),
            _row("fine-tuned", 1, "soft", truth, guess["voter"], 0.7, 0.001),
            _row("test-time", 1, "soft", truth, guess["zero"], 0.8, 0.04)]
    keys = ["baseline/0/none", "fine-tuned/0/none", "fine-tuned/1/soft", "test-time/1/soft"]
    predictions = {"labels": truth.tolist(),
                   "rows": dict(zip(keys, (g.tolist() for g in guess.values())))}
    done = complete_rows(rows, predictions)
    assert [row_key(r) for r in done] == keys
    assert "p_vs_control" not in rows[0]  # the input rows are left as they were
    for row, predicted in zip(done, guess.values()):
        assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predicted))
        assert row["predicted_counts"] == np.bincount(predicted, minlength=3).tolist()
    control = guess["control"] == truth
    assert done[2]["p_vs_control"] == pytest.approx(mcnemar_p(guess["voter"] == truth, control))
    assert done[3]["p_vs_control"] == pytest.approx(mcnemar_p(guess["zero"] == truth, control))
    assert done[0]["p_vs_control"] is None and done[1]["p_vs_control"] is None
    # Holm over the three baseline tests: 3 x 0.001, 2 x 0.02, max(0.04, 1 x 0.04)
    assert [r["p_vs_baseline_holm"] for r in done] == pytest.approx([None, 0.04, 0.003, 0.04])
    assert done[3]["balanced_accuracy"] == pytest.approx(1 / 3)
    assert [r["chosen_on_validation"] for r in done] == [False, False, False, True]


def test_complete_rows_without_predictions_keeps_the_rest():
    truth = np.array([0, 1, 2, 2])
    rows = [_row("baseline", 0, "none", truth, truth, 0.5, None),
            _row("test-time", 2, "hard", truth, np.array([0, 1, 2, 0]), 0.4, 0.5)]
    for predictions in (None, [], {"rows": "bad"}):
        done = complete_rows(rows, predictions)
        assert [r["p_vs_control"] for r in done] == [None, None]
        assert done[1]["p_vs_baseline_holm"] == 0.5 and done[1]["chosen_on_validation"]


def test_the_report_names_the_voters_from_scratch_still_to_come():
    from voting_resnet.comparison import RECIPES
    from voting_resnet.comparison_report import _scratch_note

    config = RECIPES["smoke"].replace(scratch_split_after=(3, 2))
    rows = [{"training": "baseline", "split_after": 0}, {"training": "from-scratch", "split_after": 3}]
    assert _scratch_note(config, rows).endswith("(the paper's design), not yet scored after module 2")
    rows.append({"training": "from-scratch", "split_after": 2})
    assert _scratch_note(config, rows).endswith("(the paper's design)")
    assert _scratch_note(RECIPES["smoke"], rows) == ""
