"""csa_keras.evaluation.metrics against hand computations."""
import json
import math

import numpy as np
import pytest

from csa_keras.evaluation.metrics import (
    PAPER_PSNR_NOTE,
    PSNR_CAP_DB,
    aggregate_folds,
    classification_metrics,
    normalize_confusion_matrix,
    psnr,
    reconstruction_metrics,
    table1_markdown,
)

NAMES = ["anger", "happiness", "surprise"]
CM = np.array([[5, 1, 0],
               [2, 6, 2],
               [0, 0, 4]])


def _labels_from(cm, seed=0):
    """y_true, y_pred whose confusion matrix is ``cm``, in shuffled order."""
    rows, cols = np.nonzero(cm)
    counts = cm[rows, cols]
    y_true, y_pred = np.repeat(rows, counts), np.repeat(cols, counts)
    order = np.random.default_rng(seed).permutation(len(y_true))
    return y_true[order], y_pred[order]


def test_classification_metrics_against_hand_computation():
    y_true, y_pred = _labels_from(CM)
    m = classification_metrics(y_true, y_pred, NAMES)
    recall = np.array([5 / 6, 6 / 10, 4 / 4])
    precision = np.array([5 / 7, 6 / 7, 4 / 6])
    f1 = 2 * precision * recall / (precision + recall)
    support = np.array([6, 10, 4])
    assert m["n_test"] == 20
    assert m["accuracy"] == pytest.approx(15 / 20)
    assert m["balanced_accuracy"] == pytest.approx(recall.mean())
    assert m["precision_macro"] == pytest.approx(precision.mean())
    assert m["recall_macro"] == pytest.approx(recall.mean())
    assert m["f1_macro"] == pytest.approx(f1.mean())
    assert m["precision_weighted"] == pytest.approx((precision * support).sum() / 20)
    assert m["recall_weighted"] == pytest.approx((recall * support).sum() / 20)
    assert m["f1_weighted"] == pytest.approx((f1 * support).sum() / 20)
    assert m["confusion_matrix"] == CM.tolist()
    assert np.sum(m["confusion_matrix"]) == m["n_test"]
    np.testing.assert_allclose(m["confusion_matrix_normalized"], CM / CM.sum(1, keepdims=True))
    assert list(m["per_class_accuracy"]) == NAMES
    np.testing.assert_allclose(list(m["per_class_accuracy"].values()), recall)
    np.testing.assert_allclose(np.diag(m["confusion_matrix_normalized"]), recall)
    assert m["per_class"]["happiness"] == pytest.approx(
        {"precision": 6 / 7, "recall": 0.6, "f1": f1[1], "support": 10})
    assert m["class_names"] == NAMES


def test_metrics_are_plain_json():
    y_true, y_pred = _labels_from(CM)
    m = classification_metrics(np.asarray(y_true, dtype=np.int32), y_pred.tolist(), tuple(NAMES))
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert type(m["accuracy"]) is float and type(m["n_test"]) is int
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


def test_class_absent_from_the_test_set():
    """A class with no test image and no prediction: zero row, no NaN, macro figures unchanged."""
    y_true, y_pred = _labels_from(CM)
    m3 = classification_metrics(y_true, y_pred, NAMES)
    m4 = classification_metrics(y_true, y_pred, [*NAMES, "contempt"])
    assert len(m4["confusion_matrix"]) == 4
    assert m4["confusion_matrix"][3] == [0, 0, 0, 0]
    assert m4["confusion_matrix_normalized"][3] == [0.0, 0.0, 0.0, 0.0]
    assert m4["per_class_accuracy"]["contempt"] is None
    assert m4["per_class"]["contempt"]["support"] == 0
    for key in ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                "f1_weighted"):
        assert m4[key] == pytest.approx(m3[key]), key
    json.dumps(m4, allow_nan=False)


def test_predicted_class_without_test_images_counts_in_macro_precision():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])
    m = classification_metrics(y_true, y_pred, NAMES)
    assert m["precision_macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["recall_macro"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["per_class_accuracy"]["surprise"] is None


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 1], [0], "2 labels"),
    ([], [], "no test labels"),
    ([0, 3], [0, 1], "outside 0..2"),
    ([0, 1], [0, -1], "outside 0..2"),
])
def test_classification_metrics_errors(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, NAMES)


def test_normalize_confusion_matrix():
    out = normalize_confusion_matrix([[2, 2], [0, 0]])
    np.testing.assert_array_equal(out, [[0.5, 0.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"must be square\. Received: cm with shape \(1, 3\)$"):
        normalize_confusion_matrix([[1, 2, 3]])


def test_psnr_hand_values():
    x = np.full((3, 4, 4, 1), 0.5)
    x_hat = x.copy()
    x_hat[0] += 0.1                      # MSE 0.01 -> 20 dB
    x_hat[1, :2] -= 0.01                 # MSE 1e-4 / 2 -> 10 log10(2e4)
    values = psnr(x, x_hat)
    assert values[0] == pytest.approx(20.0)
    assert values[1] == pytest.approx(10 * math.log10(2e4))
    assert values[2] == math.inf
    assert psnr(x * 255, x_hat * 255, max_value=255.0)[0] == pytest.approx(20.0)
    assert psnr(x[:, :, :, 0], x_hat[:, :, :, 0])[0] == pytest.approx(20.0)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), "differ in shape"),
    (np.zeros(4), np.zeros(4), "batch"),
])
def test_psnr_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        psnr(a, b)
    with pytest.raises(ValueError, match=r"^max_value must be positive\. Received: max_value=0$"):
        psnr(np.zeros((1, 2)), np.ones((1, 2)), max_value=0)


def test_reconstruction_metrics_hand_values():
    x = np.zeros((3, 8, 8, 1), dtype=np.float32)
    x_hat = x.copy()
    x_hat[0] = 0.1                       # MSE 1e-2, 20 dB
    x_hat[1] = 0.01                      # MSE 1e-4, 40 dB
    m = reconstruction_metrics(x[:2], x_hat[:2])
    assert m["reconstruction_mse"] == pytest.approx((1e-2 + 1e-4) / 2, rel=1e-5)
    assert m["psnr_db"] == pytest.approx(30.0, rel=1e-5)
    assert m["psnr_peak255"] == pytest.approx(30.0 + 48.1308, abs=1e-3)
    assert m["psnr_db_of_mean_mse"] == pytest.approx(10 * math.log10(2 / 1.01e-2), rel=1e-5)
    assert m["psnr_db_of_mean_mse"] < m["psnr_db"]
    assert m["n_perfect"] == 0
    perfect = reconstruction_metrics(x, x_hat)
    assert perfect["n_perfect"] == 1
    assert perfect["psnr_db"] == pytest.approx((20 + 40 + PSNR_CAP_DB) / 3, rel=1e-5)
    assert json.dumps(perfect, allow_nan=False)
    exact = reconstruction_metrics(x, x)
    assert exact["psnr_db"] == exact["psnr_db_of_mean_mse"] == PSNR_CAP_DB


def test_psnr_peak255_of_a_hand_mse():
    """MSE 0.01 on [0, 1] images: 20 dB at peak 1, 20 + 20·log10(255) = 68.1308 dB at peak 255."""
    x = np.zeros((1, 8, 8, 1))
    m = reconstruction_metrics(x, x + 0.1)
    assert m["reconstruction_mse"] == pytest.approx(0.01, rel=1e-9)
    assert m["psnr_db"] == pytest.approx(20.0, rel=1e-9)
    assert m["psnr_peak255"] == pytest.approx(20.0 + 48.1308, abs=1e-4)
    assert m["psnr_peak255"] == pytest.approx(psnr(x, x + 0.1, max_value=255.0)[0], rel=1e-9)
    # the same images in [0, 255] with MAX = 255: the peak-255 figure is the PSNR itself
    scaled = reconstruction_metrics(x * 255, (x + 0.1) * 255, max_value=255.0)
    assert scaled["psnr_db"] == pytest.approx(20.0, rel=1e-9)
    assert scaled["psnr_peak255"] == pytest.approx(scaled["psnr_db"], rel=1e-12)


def test_paper_psnr_note_numbers_follow_from_psnr():
    one = np.zeros((1, 4, 4))
    for mse, max_value, shown in [(0.0228, 1.0, "16.4 dB"), (0.0228, 255.0, "64.6 dB")]:
        value = psnr(one, one + math.sqrt(mse), max_value=max_value)[0]
        assert f"{value:.1f} dB" == shown
        assert shown in PAPER_PSNR_NOTE
    assert "70.06 dB" in PAPER_PSNR_NOTE
    needed = psnr(one, one + math.sqrt(9.86e-8))[0]
    assert needed == pytest.approx(70.06, abs=0.01)
    assert "9.9e-08" in PAPER_PSNR_NOTE
    # the peak-255 reading: 70.06 dB is 21.93 dB at peak 1, an MSE of about 0.0064
    assert "48.13 dB" in PAPER_PSNR_NOTE and "21.93 dB" in PAPER_PSNR_NOTE
    at_peak1 = psnr(one, one + math.sqrt(0.0064))[0]
    assert at_peak1 + 20 * math.log10(255) == pytest.approx(70.06, abs=0.02)
    assert "0.0064" in PAPER_PSNR_NOTE
    # this project's 22.47 dB on the CK+48 hold-out reads 70.60 dB at peak 255
    assert "22.47 dB" in PAPER_PSNR_NOTE and "70.60 dB" in PAPER_PSNR_NOTE
    assert 22.47 + 20 * math.log10(255) == pytest.approx(70.60, abs=0.005)


def _fold(cm, psnr_db, name):
    y_true, y_pred = _labels_from(np.asarray(cm))
    m = classification_metrics(y_true, y_pred, NAMES)
    m.update(psnr_db=psnr_db, fold=name, n_train=10)
    return m


def test_aggregate_two_hand_made_folds():
    a = _fold([[2, 0, 0], [0, 2, 0], [0, 0, 0]], 20.0, "fold1")   # accuracy 1.0, no surprise
    b = _fold([[1, 1, 0], [0, 1, 1], [0, 0, 2]], 24.0, "fold2")   # accuracy 4/6
    out = aggregate_folds([a, b])
    assert out["n_folds"] == 2
    assert out["accuracy"] == pytest.approx((1 + 4 / 6) / 2)
    assert out["accuracy_std"] == pytest.approx(abs(1 - 4 / 6) / math.sqrt(2))
    assert out["psnr_db"] == pytest.approx(22.0)
    assert out["psnr_db_std"] == pytest.approx(np.std([20.0, 24.0], ddof=1))
    assert out["n_train"] == 10 and out["n_train_std"] == 0.0
    assert "fold" not in out and "fold_std" not in out
    pooled = np.array([[3, 1, 0], [0, 3, 1], [0, 0, 2]])
    assert out["confusion_matrix"] == pooled.tolist()
    assert out["n_test"] == 10 == pooled.sum()
    assert out["pooled"]["accuracy"] == pytest.approx(8 / 10)
    np.testing.assert_allclose(out["confusion_matrix_normalized"],
                               pooled / pooled.sum(1, keepdims=True))
    assert out["per_class_accuracy"] == pytest.approx(
        {"anger": 0.75, "happiness": 0.75, "surprise": 1.0})
    assert out["per_class_accuracy_mean"] == pytest.approx(
        {"anger": (1 + 0.5) / 2, "happiness": (1 + 0.5) / 2, "surprise": 1.0})
    assert out["per_class_accuracy_std"]["surprise"] == 0.0
    assert out["class_names"] == NAMES
    assert [f["fold"] for f in out["folds"]] == ["fold1", "fold2"]
    json.dumps(out, allow_nan=False)


def test_aggregate_single_fold_and_errors():
    a = _fold(CM, 20.0, "only")
    out = aggregate_folds([a])
    assert out["accuracy"] == a["accuracy"] and out["accuracy_std"] == 0.0
    with pytest.raises(ValueError, match="at least one fold"):
        aggregate_folds([])
    b = classification_metrics([0, 1], [0, 1], ["anger", "happiness"])
    with pytest.raises(ValueError, match="different shapes"):
        aggregate_folds([a, b])


def test_table1_markdown_rows_values_and_average():
    text = table1_markdown({"surprise": 0.5, "happy": 1.0, "anger": 0.75, "neutral": None})
    lines = text.strip().splitlines()
    assert lines[0] == "| Expression | This run (%) | Paper CSA (%) |"
    rows = [line.split("|")[1:4] for line in lines[2:]]
    rows = [[cell.strip() for cell in row] for row in rows]
    assert [r[0] for r in rows] == ["Anger", "Contempt", "Disgust", "Fear", "Happy", "Sadness",
                                    "Surprise", "Neutral", "**Average**"]
    assert rows[0] == ["Anger", "75.00", "96.00"]
    assert rows[1] == ["Contempt", "–", "100.00"]
    assert rows[3] == ["Fear", "–", "90.00"]
    assert rows[4] == ["Happy", "100.00", "100.00"]
    assert rows[6] == ["Surprise", "50.00", "98.00"]
    assert rows[7] == ["Neutral", "–", "–"]
    assert rows[8] == ["**Average**", "75.00", "98.00"]


def test_table1_markdown_class_order():
    text = table1_markdown({"anger": 1.0, "fear": 0.5}, class_order=["fear", "anger"])
    rows = [line.split("|")[1].strip() for line in text.strip().splitlines()[2:]]
    assert rows == ["Fear", "Anger", "**Average**"]
    assert "| **Average** | 75.00 | 98.00 |" in text
