"""The LiteRT runtime: the models in the box's TFLite artifacts answer as their Keras models, without TensorFlow."""
import json
import subprocess
import sys

import numpy as np
import pytest

from csa_keras.inference import litert
from csa_keras.inference.export import PARITY_LIMIT
from csa_keras.inference.export_record import probabilities_output
from csa_keras.inference.loading import CSA_MODEL, PRETRAINED_ROOT
from csa_keras.inference.predictor import Predictor

BFLOAT16_LIMIT = 0.02
"""How far the Keras path, which computes in bfloat16 (the pretrained CSA's policy), may be from the
float32 artifact: 0.0095 on the photograph measured; the export checks the artifact against the
float32 copy of the Keras model, within PARITY_LIMIT."""

CSA = PRETRAINED_ROOT / CSA_MODEL
"""The pretrained CSA's folder: its artifact is the float32 one."""


@pytest.fixture(scope="module")
def answers(grace_hopper):
    from csa_keras.inference.artifacts import float32_model

    light = Predictor.pretrained(CSA_MODEL, runtime="litert")
    keras_path = Predictor.pretrained(CSA_MODEL, runtime="keras")
    float32 = Predictor(float32_model(keras_path.model), class_names=keras_path.class_names, grey=keras_path.grey)
    return {name: p.predict(grace_hopper) for name, p in
            (("litert", light), ("keras", keras_path), ("float32", float32))}, light, keras_path


def test_the_artifact_gives_the_keras_records(answers):
    records, light, keras_path = answers
    assert light.runtime == "litert" and keras_path.runtime == "keras"
    assert light.class_names == keras_path.class_names and light.task == keras_path.task == "csa"
    assert light.settings == keras_path.settings and light.grey and light.channels == keras_path.channels
    assert len(records["litert"]) == len(records["keras"]) == 1
    for name, limit in (("float32", PARITY_LIMIT), ("keras", BFLOAT16_LIMIT)):
        mine, theirs = records["litert"][0], records[name][0]
        assert {k: mine[k] for k in ("status", "crop", "box", "face", "label")} == \
               {k: theirs[k] for k in ("status", "crop", "box", "face", "label")}
        diff = max(abs(mine["probabilities"][c] - theirs["probabilities"][c]) for c in light.class_names)
        assert diff <= limit, (name, diff)
    assert sum(records["litert"][0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_the_light_path_imports_neither_tensorflow_nor_keras(grace_hopper):
    code = ("import sys, json\nfrom csa_keras.inference.predictor import Predictor\n"
            f"r = Predictor.pretrained(runtime='litert').predict({str(grace_hopper)!r})\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'sklearn', "
            "'scipy', 'matplotlib', 'h5py'})\n"
            "print(json.dumps({'label': r[0]['label'], 'heavy': heavy}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["heavy"] == [] and answer["label"]
    assert "INFO:" not in done.stderr


def test_the_model_in_the_box_ships_its_checked_artifact():
    artifact = litert.resolve_artifact(CSA_MODEL)
    assert artifact == CSA / "classifier.tflite"
    assert litert.resolve_artifact(CSA) == artifact == litert.resolve_artifact(CSA / "classifier.keras")
    record = json.loads((CSA / "export.json").read_text())["classifier.tflite"]
    assert record["quantize"] == "none" and record["max_abs_diff"] <= PARITY_LIMIT
    assert record["artifact"] == "classifier.tflite" and record["artifact_bytes"] == artifact.stat().st_size


def test_runtimes_are_chosen_and_refused_in_one_line(tmp_path):
    assert litert.choose_runtime("keras") == "keras" and litert.choose_runtime("litert") == "litert"
    assert litert.choose_runtime("auto") == "keras"  # TensorFlow and Keras are installed here
    with pytest.raises(ValueError, match="runtime must be one of"):
        litert.choose_runtime("onnx")
    with pytest.raises(ValueError, match="keras runtime only"):
        Predictor.pretrained(runtime="litert", voting="soft")
    with pytest.raises(ValueError, match="holds no TFLite artifact"):
        Predictor.from_run(tmp_path, runtime="litert")
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="has no TFLite artifact"):
        litert.resolve_artifact(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="does not exist"):
        litert.resolve_artifact(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="one of the models in the box"):
        Predictor.pretrained("nothing_here", runtime="litert")


def test_an_exported_run_is_found_in_its_export_folder(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "classifier.keras").write_bytes((CSA / "classifier.keras").read_bytes())
    (run / "export" / "classifier.tflite").write_bytes((CSA / "classifier.tflite").read_bytes())
    model = litert.load_artifact(run)
    assert model.path == run / "export" / "classifier.tflite"
    assert model.class_names[0] == "anger" and model.channels == 1 and model.input_shape == (None, 48, 48, 1)


def test_the_export_names_the_output_that_votes():
    rng = np.random.default_rng(0)
    vote = rng.dirichlet(np.ones(7), size=4).astype(np.float32)
    outputs = {"crop_logits": rng.normal(size=(4, 10, 7)), "vote": vote}
    assert probabilities_output(outputs, vote.astype(np.float64)) == "vote"
    assert probabilities_output({"a": rng.normal(size=(4, 7))}, vote) is None
