"""``python -m csa_keras.export --quantize``: its settings, its refusals, and what a failure leaves.

A quantised export is written and checked like a float32 one, in a
temporary folder beside the destination: a conversion or calibration that
fails, Ctrl-C during calibration, and an artifact that no longer picks the
Keras model's classes each leave the destination as it was and no temporary
folder behind. The runs are tiny untrained CSAs without a ``config.json``,
so int8 calibrates on synthetic faces: the one of ``conftest.py``, whose
probabilities are nearly uniform, and a confident one (its last layer's
weights scaled up), whose answers a broken artifact visibly changes.
"""
import json
import shutil

import numpy as np
import pytest
from commands import call_main, error_line

from csa_keras.export import main as export_main
from csa_keras.inference import artifacts
from csa_keras.inference import export as export_module
from csa_keras.inference.export import ExportError, export_run
from csa_keras.inference.quantize import artifact_probabilities
from csa_keras.tasks import get_task

PROG = "python -m csa_keras.export"
REAL_PREDICTOR = artifacts.tflite_predictor


def quiet(_line):
    pass


@pytest.fixture
def run(tiny_run, tmp_path):
    """A fresh copy of the tiny run, to export into."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.fixture(scope="module")
def confident_run(tmp_path_factory):
    """A tiny untrained CSA whose softmax is sharp: its output weights multiplied by 50."""
    import keras

    from csa_keras.csa.model import build_classifier, build_encoder

    out = tmp_path_factory.mktemp("confident_run")
    keras.utils.set_random_seed(0)
    model = build_classifier(build_encoder(filters=(4, 4, 8, 8)), 3)
    layer = model.get_layer("predictions")
    layer.kernel.assign(layer.kernel * 50.0)
    model.save(out / "classifier.keras")
    (out / "metrics.json").write_text(json.dumps({"task": "csa", "class_names": ["a", "b", "c"]}))
    return out


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _one_error(code, out, err):
    return error_line(code, out, err, PROG)


@pytest.mark.parametrize("args, message", [
    (["--quantize", "float16"], "--quantize applies to --to='tflite' only. "
                                "Received: --quantize='float16' with --to='savedmodel'"),
    (["--to", "tflite", "--quantize", "INT8"],
     "argument --quantize: invalid choice: 'INT8' (choose from 'none', 'float16', 'int8')"),
    (["--to", "tflite", "--calibration-images", "8"],
     "--calibration-images applies to --quantize='int8' only. Received: --calibration-images=8 with "
     "--quantize='none'"),
    (["--to", "tflite", "--quantize", "int8", "--calibration-images", "0"],
     "--calibration-images must be >= 1. Received: --calibration-images=0"),
])
def test_bad_quantize_settings_are_one_line_and_nothing_is_written(run, args, message, capsys):
    before = _files(run)
    line = _one_error(*call_main(export_main, ["--model", run, *args], capsys))
    assert line.endswith(message)
    assert _files(run) == before


def _export_int8(run, target):
    return export_run(run, "tflite", output=target, quantize="int8", calibration_images=8, max_images=8,
                      latency_runs=0, log=quiet)


def _wrong_calibration(run_dir, input_shape, n, log):
    """Calibration faces of a shape the model does not take: the converter's calibration fails."""
    return np.zeros((n, 8, 8, 1), np.float32), {"images": n, "source": "8x8 faces", "fallback": False}


def _interrupting(calibration):
    """A representative dataset that is interrupted (Ctrl-C) after its first face."""
    def dataset():
        yield [np.asarray(calibration[:1], np.float32)]
        raise KeyboardInterrupt
    return dataset


def _rolled(path, *args):
    """The artifact's predictor giving each face the probabilities of the next class over."""
    predict = REAL_PREDICTOR(path, *args)
    if path.name != "artifact":
        return predict
    return lambda images: np.roll(predict(images), 1, axis=1)


def _not_finite(path, *args):
    predict = REAL_PREDICTOR(path, *args)
    return predict if path.name != "artifact" else lambda images: predict(images) * np.nan


@pytest.mark.parametrize("failure, error, message", [
    ("calibration", ExportError, "the TFLite converter cannot convert the model with quantize='int8': "
                                 "Attempting to resize dimension 1"),
    ("interrupt", KeyboardInterrupt, None),
    pytest.param("other classes", ExportError,
                 r"the int8 artifact picks a class the Keras model ranks more than 0.1 below "
                 r"its own on 100.0% of 8 built-in synthetic faces \(fallback\), more than 10%",
                 marks=pytest.mark.heavy),
    pytest.param("not finite", ExportError, "the int8 artifact gives non-finite class probabilities",
                 marks=pytest.mark.heavy),
])
def test_a_failed_quantisation_leaves_the_destination_as_it_was(confident_run, tmp_path, monkeypatch, failure,
                                                                error, message):
    run = shutil.copytree(confident_run, tmp_path / "run")
    target = tmp_path / "new" / "deeper" / "model_int8.tflite"
    patches = {"calibration": (export_module, "calibration_faces", _wrong_calibration),
               "interrupt": (artifacts, "_representative", _interrupting),
               "other classes": (artifacts, "tflite_predictor", _rolled),
               "not finite": (artifacts, "tflite_predictor", _not_finite)}
    owner, name, replacement = patches[failure]
    monkeypatch.setattr(owner, name, replacement)
    with pytest.raises(error, match=message):
        _export_int8(run, target)
    assert not (tmp_path / "new").exists()  # the folders it made are gone too

    monkeypatch.undo()
    _export_int8(run, target)
    before = _files(target.parent)
    monkeypatch.setattr(owner, name, replacement)
    with pytest.raises(error):
        _export_int8(run, target)
    assert _files(target.parent) == before  # the earlier artifact and its record, whole; no temporary folder


def test_a_failed_conversion_from_the_shell_is_one_line(run, monkeypatch, capsys):
    monkeypatch.setattr(export_module, "calibration_faces", _wrong_calibration)
    before = _files(run)
    code, out, err = call_main(export_main, ["--model", run, "--to", "tflite", "--quantize", "int8",
                                             "--max-images", "4", "--latency-runs", "0"], capsys)
    notes = err.strip().splitlines()[:-1]  # the run's data cannot be re-created: said, then the error
    assert all(note.startswith("cannot re-create the run's test images") for note in notes) and len(notes) == 1
    line = _one_error(code, out, err.strip().splitlines()[-1])
    assert "the TFLite converter cannot convert the model with --quantize='int8': Attempting to resize" in line
    assert line.endswith(f"nothing was written to {run / 'export' / 'classifier_int8.tflite'}")
    assert _files(run) == before


def test_int8_probabilities_are_renormalised_not_softmaxed_again():
    task = get_task("csa")
    steps = np.array([[128, 127, 2], [0, 255, 3]]) / 256  # an int8 softmax: rows sum to 1.0039 and 1.0078
    probabilities = artifact_probabilities(task, steps)
    np.testing.assert_allclose(probabilities, steps / steps.sum(axis=1, keepdims=True))
    logits = np.array([[2.0, -1.0, 0.5]])
    np.testing.assert_allclose(artifact_probabilities(task, logits).sum(axis=1), 1.0)
    assert artifact_probabilities(task, logits)[0, 0] == pytest.approx(np.exp(2) / np.exp(logits).sum())


def test_a_mixed_precision_model_exports_to_tflite_as_its_float32_copy(tmp_path):
    import json

    import keras

    from csa_keras.csa.model import build_classifier, build_encoder

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_classifier(build_encoder(filters=(4, 4, 8, 8)), 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = tmp_path / "mixed"
    run.mkdir()
    model.save(run / "classifier.keras")
    (run / "metrics.json").write_text(json.dumps({"task": "csa", "class_names": ["a", "b", "c"]}))
    for quantize in ("none", "int8"):
        record = export_run(run, "tflite", quantize=quantize, max_images=8, latency_runs=0, log=quiet)
        assert record["keras_float32_copy"] is True
    assert record["max_abs_diff"] < 0.25 and record["clear_changes"] == 0.0
    assert json.loads((run / "export" / "export.json").read_text())["classifier.tflite"]["max_abs_diff"] <= 1e-4
