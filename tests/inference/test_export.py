"""``python -m csa_keras.export``: SavedModel and TFLite artifacts and their parity.

Parity bounds, on the largest absolute difference of the class probabilities
between an artifact and the Keras model it came from:

- SavedModel: 1e-6. It runs the same TensorFlow graph; measured 0.
- TFLite (float32, no quantisation): 1e-4. Its kernels (XNNPACK) sum in
  another order; measured at most 3.3e-6 (a CSA ``quick`` run; 1.5e-7 on a
  ``smoke`` run, under 1e-7 on Voting ResNets), a margin of 30.
- ONNX (tf2onnx, run on ONNX Runtime): 1e-4, the same reasoning as TFLite
  (ONNX Runtime's own kernels); measured 9.8e-7 on the pretrained CSA and
  5.4e-8 on a Voting ResNet (docs/prediction.md).

Quantised TFLite artifacts are judged by accuracy and by the classes they
pick, not by a probability bound: on the CSA ``smoke`` run float16 moved
the probabilities by at most 1.3e-5 and int8 by 2.9e-3 (the same class on
every test image; 0.11 on a CSA trained on FER2013, docs/prediction.md). An
int8 softmax comes in steps of 1/256, so its rows sum to 1 within ``K / 256``.

The CSA model comes from a ``smoke`` run on the built-in data, whose test
and training images the export re-creates from ``config.json`` and
``splits.json``; the Voting ResNet from a one-epoch run on 16x16 faces,
which ``config.json`` cannot re-create, so its parity check and its int8
calibration take synthetic faces.
"""
import json
import re
import sys

import numpy as np
import pytest
from commands import run_module

from csa_keras.csa.config import preset as csa_preset
from csa_keras.csa.training import run_csa
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.inference.artifacts import artifact_bytes, saved_model_predictor, tflite_predictor
from csa_keras.inference.export import ExportError, export_run
from csa_keras.inference.loading import load_model
from csa_keras.inference.quantize import clear_changes
from csa_keras.inference.run_images import run_test_images, run_test_set
from csa_keras.training.config import config_json

SAVEDMODEL_BOUND = 1e-6
TFLITE_BOUND = 1e-4
ONNX_BOUND = 1e-4
SUM_BOUND = {"float16": 1e-5, "int8": 7 / 256}
"""How far from 1 a row of seven probabilities sums: float rounding, or a step of 1/256 per class."""
SIZE_RATIO = {"float16": (0.45, 0.55), "int8": (0.2, 0.3)}
"""Artifact size over the float32 TFLite's: the weights in 2 bytes instead of 4, or in 1."""


def quiet(_line):
    pass


def run_cli(*args, timeout=300):
    return run_module("csa_keras.export", *args, timeout=timeout)


@pytest.fixture(scope="module")
def csa_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export_csa") / "run"
    run_csa(csa_preset("smoke").replace(gradcam=False), output=out, verbose=0, log=quiet)
    return out


@pytest.fixture(scope="module")
def vrn_run(tmp_path_factory):
    from voting_resnet.config import preset as vrn_preset
    from voting_resnet.training import run_vrn

    out = tmp_path_factory.mktemp("export_vrn") / "run"
    faces = make_synthetic_dataset(seed=0, n_subjects=4, images_per_class=1, size=16, colour=True)
    config = vrn_preset("smoke").replace(split_after=(3,), gradcam=False, test_size=0.25)
    run_vrn(config, output=out, dataset=faces, verbose=0, log=quiet)
    return out


def _check_record(record, run, name):
    assert record["export_json"] == str(run / "export" / "export.json")
    on_disk = json.loads((run / "export" / "export.json").read_text())
    assert on_disk[name]["max_abs_diff"] == record["max_abs_diff"]
    assert record["artifact_bytes"] == artifact_bytes(run / "export" / name) > 0
    assert record["artifact_mb"] == pytest.approx(record["artifact_bytes"] / 1e6, abs=1e-3)
    assert record["argmax_agreement"] == 1.0


def test_csa_savedmodel_matches_keras_on_the_run_test_images(csa_run):
    record = export_run(csa_run, "savedmodel", latency_runs=2, log=quiet)
    test = json.loads((csa_run / "splits.json").read_text())["holdout"]["test"]
    assert record["task"] == "csa" and record["model"] == "classifier.keras"
    assert record["parity_images"] == len(test)
    assert "test images of split 'holdout'" in record["parity_source"]
    assert record["max_abs_diff"] <= SAVEDMODEL_BOUND
    assert set(record["latency_ms"]) == {"keras", "artifact", "runs"}
    _check_record(record, csa_run, "classifier_saved_model")

    images, _ = run_test_images(csa_run, (48, 48, 1))
    served = saved_model_predictor(record["artifact"])(images)
    assert served.shape == (len(test), 7)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_csa_tflite_within_bound_and_beside_the_savedmodel_record(csa_run):
    record = export_run(csa_run, "tflite", latency_runs=0, log=quiet)
    assert record["format"] == "tflite" and record["artifact"].endswith("classifier.tflite")
    assert record["max_abs_diff"] <= TFLITE_BOUND
    assert "latency_ms" not in record
    _check_record(record, csa_run, "classifier.tflite")
    records = json.loads((csa_run / "export" / "export.json").read_text())
    assert set(records) == {"classifier_saved_model", "classifier.tflite"}


def test_recreated_test_images_are_the_runs(csa_run):
    from csa_keras.training.experiment import load_data

    images, source = run_test_images(csa_run, (48, 48, 1), max_images=5)
    test = json.loads((csa_run / "splits.json").read_text())["holdout"]["test"]
    data = load_data(csa_preset("smoke"), progress=False)
    np.testing.assert_array_equal(images, data.subset(test[:5]).scaled())
    assert source.startswith("5 test images")


def test_vrn_test_images_follow_the_protocol_without_splits_json(tmp_path):
    from voting_resnet.config import preset as vrn_preset

    config = vrn_preset("smoke")
    faces = make_synthetic_dataset(seed=0, n_subjects=6, images_per_class=1).summary()
    faces["image_shape"] = [48, 48, 3]
    (tmp_path / "config.json").write_text(
        config_json(config, run={"protocol_used": "holdout", "dataset": faces}))
    images, source = run_test_images(tmp_path, (48, 48, 3), max_images=0)
    assert images.shape == (9, 48, 48, 3)  # the smoke run's n_test (tests/voting_resnet/test_vrn_train.py)
    assert np.all(images[..., 0] == images[..., 2])  # grey faces repeated to 3 channels
    assert "split 'holdout'" in source


def test_vrn_savedmodel_exports_vote_and_crop_logits(vrn_run):
    messages = []
    record = export_run(vrn_run, "savedmodel", latency_runs=0, log=messages.append)
    assert record["task"] == "voting_resnet" and record["outputs"] == ["crop_logits", "vote"]
    assert "synthetic" in record["parity_source"] and record["parity_images"] == 32
    assert any("cannot re-create" in m for m in messages)
    assert record["max_abs_diff"] <= SAVEDMODEL_BOUND
    assert record["max_abs_diff_crop_logits"] <= SAVEDMODEL_BOUND


def test_cli_exports_the_voting_resnet_to_tflite_without_custom_objects(vrn_run, tmp_path):
    target = tmp_path / "vrn.tflite"
    result = run_cli("--model", str(vrn_run), "--to", "tflite", "--output", str(target),
                     "--latency-runs", "3", "--max-images", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max |p_artifact - p_keras|" in result.stdout
    assert "single-image latency (median of 3)" in result.stdout
    assert "cannot re-create the run's test images" in result.stderr
    record = json.loads((tmp_path / "export.json").read_text())["vrn.tflite"]
    assert record["parity_images"] == 8 and record["argmax_agreement"] == 1.0
    assert record["max_abs_diff"] <= TFLITE_BOUND
    assert record["max_abs_diff_crop_logits"] <= 10 * TFLITE_BOUND
    assert record["artifact_bytes"] == target.stat().st_size
    images = make_synthetic_dataset(seed=1, n_subjects=1, images_per_class=1, size=16,
                                    colour=True).scaled()
    outputs = tflite_predictor(target)(images)
    assert outputs["vote"].shape == (7, 7) and outputs["crop_logits"].shape == (7, 10, 7)
    np.testing.assert_allclose(outputs["vote"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_csa_quantized_tflite_is_measured_against_keras_and_float32(csa_run, quantize):
    record = export_run(csa_run, "tflite", quantize=quantize, latency_runs=3, log=quiet)
    name = f"classifier_{quantize}.tflite"
    assert record["quantize"] == quantize and record["artifact"].endswith(name)
    assert record["artifact_bytes"] == artifact_bytes(csa_run / "export" / name)
    low, high = SIZE_RATIO[quantize]
    assert low < record["artifact_bytes"] / record["float32_bytes"] < high
    assert record["size_ratio"] == pytest.approx(record["artifact_bytes"] / record["float32_bytes"], abs=1e-4)
    assert set(record["latency_ms"]) == {"keras", "artifact", "float32", "runs"}
    assert all(record["latency_ms"][k] > 0 for k in ("keras", "artifact", "float32"))

    test = run_test_set(csa_run, (48, 48, 1))
    keras_probabilities = load_model(csa_run / "classifier.keras").predict(test.images, verbose=0)
    keras_accuracy = float(np.mean(keras_probabilities.argmax(1) == test.labels))
    probabilities = tflite_predictor(record["artifact"])(test.images)
    assert probabilities.shape == (len(test.labels), 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=SUM_BOUND[quantize])
    accuracy = record["accuracy"]
    assert accuracy["images"] == len(test.labels) == record["parity_images"]
    assert accuracy["keras"] == pytest.approx(keras_accuracy) == accuracy["float32"]
    assert accuracy["artifact"] == pytest.approx(float(np.mean(probabilities.argmax(1) == test.labels)))
    assert accuracy["drop_points"] == pytest.approx(100 * (accuracy["keras"] - accuracy["artifact"]), abs=1e-3)
    assert accuracy["within_goal"] == (accuracy["drop_points"] <= accuracy["goal_points"] == 1.0)
    assert record["argmax_agreement"] == pytest.approx(np.mean(keras_probabilities.argmax(1)
                                                               == probabilities.argmax(1)))
    assert record["clear_changes"] == pytest.approx(clear_changes(keras_probabilities, probabilities))
    assert record["max_abs_diff"] < 0.05  # measured 2.9e-3 (int8)
    if quantize == "int8":
        train = json.loads((csa_run / "splits.json").read_text())["holdout"]["train"]
        assert record["calibration"] == {
            "images": min(256, len(train)), "fallback": False,
            "source": f"{min(256, len(train))} training images of split 'holdout' of the run's dataset (synthetic)"}
    else:
        assert "calibration" not in record
    assert name in json.loads((csa_run / "export" / "export.json").read_text())


def test_calibration_faces_are_the_runs_training_faces(csa_run):
    from csa_keras.inference.quantize import run_training_images
    from csa_keras.training.experiment import load_data

    images, source = run_training_images(csa_run, (48, 48, 1), 10)
    split = json.loads((csa_run / "splits.json").read_text())["holdout"]
    data = load_data(csa_preset("smoke"), progress=False)
    train = data.subset(split["train"]).scaled().reshape(len(split["train"]), -1)
    test = data.subset(split["test"]).scaled().reshape(len(split["test"]), -1)
    flat = images.reshape(10, -1)
    assert images.shape == (10, 48, 48, 1) and source.startswith("10 training images")
    assert all((train == face).all(axis=1).any() and not (test == face).all(axis=1).any() for face in flat)
    assert len({face.tobytes() for face in flat}) == 10
    again, _ = run_training_images(csa_run, (48, 48, 1), 10)
    np.testing.assert_array_equal(again, images)  # drawn with the run's seed


def test_vrn_float16_keeps_vote_and_crop_logits(vrn_run, tmp_path):
    record = export_run(vrn_run, "tflite", output=tmp_path / "vrn_float16.tflite", quantize="float16",
                        max_images=8, latency_runs=0, log=quiet)
    assert record["outputs"] == ["crop_logits", "vote"] and record["accuracy"] is None
    assert record["max_abs_diff"] <= 1e-3 and record["max_abs_diff_crop_logits"] <= 1e-2
    outputs = tflite_predictor(tmp_path / "vrn_float16.tflite")(np.zeros((2, 16, 16, 3), np.float32))
    assert outputs["vote"].shape == (2, 7) and outputs["crop_logits"].shape == (2, 10, 7)


def test_cli_exports_the_voting_resnet_to_int8_calibrated_on_synthetic_faces(vrn_run, tmp_path):
    target = tmp_path / "vrn_int8.tflite"
    result = run_cli("--model", str(vrn_run), "--to", "tflite", "--quantize", "int8", "--output", str(target),
                     "--latency-runs", "3", "--max-images", "8", "--calibration-images", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cannot re-create the run's training images" in result.stderr
    assert "int8 calibrated on 20 built-in synthetic faces (fallback)" in result.stdout
    assert re.search(r"latency \(median of 3\): Keras [\d.]+ ms, tflite int8 [\d.]+ ms, float32 TFLite [\d.]+ ms",
                     result.stdout)
    record = json.loads((tmp_path / "export.json").read_text())["vrn_int8.tflite"]
    assert record["calibration"] == {"images": 20, "source": "20 built-in synthetic faces (fallback)",
                                     "fallback": True}
    assert record["outputs"] == ["crop_logits", "vote"] and record["accuracy"] is None
    assert record["artifact_bytes"] == target.stat().st_size < record["float32_bytes"] / 3
    assert set(record["latency_ms"]) == {"keras", "artifact", "float32", "runs"}
    images = make_synthetic_dataset(seed=1, n_subjects=1, images_per_class=1, size=16,
                                    colour=True).scaled()
    outputs = tflite_predictor(target)(images)
    assert outputs["vote"].shape == (7, 7) and outputs["crop_logits"].shape == (7, 10, 7)
    np.testing.assert_allclose(outputs["vote"].sum(axis=1), 1.0, atol=SUM_BOUND["int8"])


def test_a_hard_voter_converts_to_builtin_int8_tflite_and_votes_like_numpy(tmp_path):
    """The hard vote lowers to TFLite builtins (int8 allows no others) and still counts the views' maxima."""
    import keras

    from csa_keras.inference.artifacts import write_tflite
    from voting_resnet.layers import hard_vote
    from voting_resnet.models import build_voting_resnet

    keras.utils.set_random_seed(0)
    model = build_voting_resnet(num_classes=7, input_shape=(16, 16, 3), split_after=3, voting="hard")
    faces = np.random.default_rng(0).uniform(0, 1, (24, 16, 16, 3)).astype("float32")
    target = write_tflite(model, tmp_path / "hard_int8.tflite", scratch=tmp_path, quantize="int8",
                          calibration=faces[:16])
    outputs = tflite_predictor(target)(faces[16:])
    expected = hard_vote(outputs["crop_logits"])
    assert outputs["vote"].shape == (8, 7)
    np.testing.assert_array_equal(outputs["vote"].argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(outputs["vote"], expected, atol=0.02)


@pytest.mark.parametrize("args, message", [
    (["--model", "{missing}"], "--model {missing} does not exist"),
    (["--model", "{empty}"], "no classifier.keras (CSA) or model.keras (Voting ResNet)"),
    (["--model", "{empty}", "--to", "coreml"], "invalid choice: 'coreml'"),
    (["--model", "{empty}", "--max-images", "-1"], "--max-images must be >= 0"),
    (["--model", "{empty}", "--to", "tflite", "--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
    (["--model", "{empty}", "--quantize", "int8"], "--quantize applies to --to='tflite' only. "
                                                   "Received: --quantize='int8' with --to='savedmodel'"),
])
def test_cli_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    paths = {"missing": tmp_path / "nowhere", "empty": tmp_path}
    result = run_cli(*[a.format(**paths) for a in args])
    assert result.returncode == 2
    assert result.stderr.startswith("python -m csa_keras.export: error: ")
    assert message.format(**paths) in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unusable_model_and_output_are_export_errors(csa_run, tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="not a Keras model file"):
        export_run(tmp_path, log=quiet)
    with pytest.raises(ExportError, match="unknown format"):
        export_run(csa_run, "coreml", log=quiet)
    with pytest.raises(ExportError, match="other than a SavedModel"):
        export_run(csa_run, "savedmodel", output=csa_run, log=quiet)
    with pytest.raises(ExportError, match="ends in .tflite"):
        export_run(csa_run, "tflite", output=tmp_path / "model.bin", log=quiet)
    assert (csa_run / "classifier.keras").is_file()


def _onnx_session(path):
    onnxruntime = pytest.importorskip("onnxruntime")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_csa_onnx_matches_keras_on_the_run_test_images(csa_run):
    pytest.importorskip("tf2onnx")
    record = export_run(csa_run, "onnx", latency_runs=2, log=quiet)
    test = json.loads((csa_run / "splits.json").read_text())["holdout"]["test"]
    assert record["format"] == "onnx" and record["artifact"].endswith("classifier.onnx")
    assert record["max_abs_diff"] <= ONNX_BOUND
    assert record["accuracy"]["images"] == record["parity_images"] == len(test)
    assert record["accuracy"]["artifact"] == record["accuracy"]["keras"]
    assert set(record["latency_ms"]) == {"keras", "artifact", "runs"}
    assert {"tf2onnx", "onnx", "onnxruntime", "tensorflow"} <= set(record["versions"])
    _check_record(record, csa_run, "classifier.onnx")

    session = _onnx_session(record["artifact"])
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("image", [48, 48, 1])]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    images, _ = run_test_images(csa_run, (48, 48, 1))
    (served,) = session.run(None, {"image": images})
    keras_p = load_model(csa_run / "classifier.keras").predict_on_batch(images)
    assert served.shape == (len(test), 7)
    assert float(np.max(np.abs(served - keras_p))) == pytest.approx(record["max_abs_diff"], abs=1e-7)


@pytest.mark.heavy
def test_cli_exports_the_voting_resnet_to_onnx_with_vote_and_crop_logits(vrn_run, tmp_path):
    pytest.importorskip("tf2onnx")
    target = tmp_path / "vrn.onnx"
    result = run_cli("--model", str(vrn_run), "--to", "onnx", "--output", str(target),
                     "--latency-runs", "3", "--max-images", "8", "--threads", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"onnx artifact: {target.resolve()}")
    assert "single-image latency (median of 3)" in result.stdout
    record = json.loads((tmp_path / "export.json").read_text())["vrn.onnx"]
    assert record["outputs"] == ["crop_logits", "vote"] and record["probabilities_output"] == "vote"
    assert record["parity_images"] == 8 and record["argmax_agreement"] == 1.0
    assert record["max_abs_diff"] <= ONNX_BOUND
    assert record["max_abs_diff_crop_logits"] <= 10 * ONNX_BOUND
    assert record["artifact_bytes"] == target.stat().st_size
    session = _onnx_session(target)
    images = make_synthetic_dataset(seed=1, n_subjects=1, images_per_class=1, size=16,
                                    colour=True).scaled()
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": images})))
    assert outputs["vote"].shape == (7, 7) and outputs["crop_logits"].shape == (7, 10, 7)
    np.testing.assert_allclose(outputs["vote"].sum(axis=1), 1.0, atol=1e-5)


def test_onnx_with_a_wrong_name_is_refused_before_any_work(csa_run, tmp_path):
    pytest.importorskip("tf2onnx")
    with pytest.raises(ExportError, match=r"output must be a path that ends in .onnx for format='onnx'. "
                                          r"Received: output=.*model.tflite"):
        export_run(csa_run, "onnx", output=tmp_path / "model.tflite", log=quiet)
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_its_extra_is_refused_before_any_work(csa_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # what find_spec answers when it is not installed
    with pytest.raises(ExportError, match=r"^format='onnx' needs the onnx extra \(tf2onnx is not installed\): "
                                          r"pip install 'csa-keras\[onnx\]'. Received: format='onnx'$"):
        export_run(csa_run, "onnx", output=tmp_path / "model.onnx", log=quiet)
    assert list(tmp_path.iterdir()) == []
