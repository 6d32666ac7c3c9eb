"""The ``.keras`` files the project writes load with plain Keras and say how to use them.

A CSA written by ``python -m csa_keras.train`` is loaded with
``keras.models.load_model`` in a fresh interpreter where this project cannot
be imported at all (an import hook refuses ``csa_keras`` and
``voting_resnet``), and must give the outputs it gives here; a Voting ResNet
loads there after ``import voting_resnet`` alone. Every archive carries
``preprocessing.json`` (class names, input preprocessing).
"""
import json
import subprocess
import sys
import textwrap
import zipfile

import commands
import keras
import numpy as np
import pytest

from csa_keras.data.faces import FaceSettings, preprocessing_for
from csa_keras.layers import BatchNorm
from csa_keras.utils.artifacts import PREPROCESSING_MEMBER, portable, read_preprocessing, save_model

NO_PROJECT = textwrap.dedent("""
    import sys
    class NoProject:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("csa_keras", "voting_resnet"):
                raise ImportError(f"{name}: this interpreter has no csa_keras")
    sys.meta_path.insert(0, NoProject())
""")

LOAD = textwrap.dedent("""
    import json, sys, zipfile
    import numpy as np
    import keras
    path, inputs, outputs = sys.argv[1:4]
    {imports}
    model = keras.models.load_model(path)
    predicted = model.predict(np.load(inputs), verbose=0)
    np.savez(outputs, **(predicted if isinstance(predicted, dict) else {{"output": predicted}}))
    preprocessing = json.loads(zipfile.ZipFile(path).read("preprocessing.json"))
    print(json.dumps({{
        "classes": sorted({{type(layer).__module__ + "." + type(layer).__name__
                           for m in [model] + [l for l in model.layers if hasattr(l, "layers")]
                           for layer in m.layers}}),
        "project_loaded": sorted(n for n in sys.modules if n.split(".")[0] in ("csa_keras", "voting_resnet")),
        "preprocessing": preprocessing,
    }}))
""")


def outputs(predicted) -> dict:
    """A model's outputs by name (one output: ``output``)."""
    return predicted if isinstance(predicted, dict) else {"output": predicted}


def assert_same(there, predicted) -> None:
    here = outputs(predicted)
    assert sorted(there.files) == sorted(here)
    for name in here:
        np.testing.assert_allclose(there[name], np.asarray(here[name]), rtol=1e-5, atol=1e-6, err_msg=name)


def load_elsewhere(path, inputs, tmp_path, imports=""):
    """Load ``path`` in a fresh interpreter and run it on ``inputs``: (outputs, what it saw)."""
    np.save(tmp_path / "inputs.npy", inputs)
    script = (NO_PROJECT if not imports else "") + LOAD.format(imports=imports)
    result = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "inputs.npy"),
                             str(tmp_path / "outputs.npz")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "outputs.npz"), json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out, _ = commands.smoke_run("csa_keras.train", tmp_path_factory.mktemp("plain") / "run")
    return out


@pytest.mark.parametrize("name", ["classifier.keras", "autoencoder.keras"])
def test_a_trained_csa_loads_where_the_project_is_not_installed(smoke_run, name, tmp_path):
    from csa_keras.inference.loading import load_model

    here = load_model(smoke_run / name)
    faces = np.random.default_rng(0).random((3, *here.input_shape[1:]), dtype=np.float32)
    there, seen = load_elsewhere(smoke_run / name, faces, tmp_path)
    assert seen["project_loaded"] == []
    assert "keras.src.layers.normalization.batch_normalization.BatchNormalization" in seen["classes"]
    assert not [c for c in seen["classes"] if "csa_keras" in c]
    assert_same(there, here.predict(faces, verbose=0))


def test_a_trained_csa_says_its_classes_and_input(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    preprocessing = read_preprocessing(smoke_run / "classifier.keras")
    assert preprocessing["class_names"] == metrics["class_names"]
    assert preprocessing["input"]["shape"] == [48, 48, 1] and preprocessing["input"]["colour"] == "grey"
    assert preprocessing["face"]["min_size"] == FaceSettings().min_size
    assert read_preprocessing(smoke_run / "autoencoder.keras")["class_names"] == []


def test_a_voting_resnet_loads_after_importing_voting_resnet_alone(tmp_path):
    from voting_resnet import build_voting_resnet

    model = build_voting_resnet(num_classes=3, input_shape=(48, 48, 3), split_after=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    names = ["anger", "happiness", "surprise"]
    save_model(model, tmp_path / "model.keras", preprocessing=preprocessing_for(names, (48, 48, 3)))
    faces = np.random.default_rng(1).random((2, 48, 48, 3), dtype=np.float32)
    there, seen = load_elsewhere(tmp_path / "model.keras", faces, tmp_path, imports="import voting_resnet")
    assert not [c for c in seen["classes"] if c.endswith(".BatchNorm")]
    assert seen["preprocessing"]["class_names"] == names and seen["preprocessing"]["input"]["shape"] == [48, 48, 3]
    assert_same(there, model.predict(faces, verbose=0))


def test_portable_swaps_the_fused_layer_for_keras_own_with_the_same_weights():
    inputs = keras.Input((6, 6, 2))
    inner = keras.Sequential([keras.Input((6, 6, 2)), BatchNorm(name="inner_bn")], name="inner")
    x = BatchNorm(name="outer_bn")(inner(inputs))
    model = keras.Model(inputs, x, name="pair")
    for layer in (model.get_layer("outer_bn"), inner.get_layer("inner_bn")):
        layer.set_weights([np.full(w.shape, v, "float32") for w, v in zip(layer.weights, (2.0, 0.5, 0.1, 3.0))])
    model.compile(optimizer="sgd", loss="mse")
    copy = portable(model)
    assert type(copy.get_layer("outer_bn")) is keras.layers.BatchNormalization
    assert type(copy.get_layer("inner").get_layer("inner_bn")) is keras.layers.BatchNormalization
    assert copy.get_compile_config()["loss"] == "mse"
    x = np.random.default_rng(2).normal(size=(4, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert portable(plain) is plain


def test_the_preprocessing_member_is_bounded_and_optional(tmp_path):
    path = tmp_path / "m.keras"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    save_model(model, path)
    assert read_preprocessing(path) is None
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(PREPROCESSING_MEMBER, "[1, 2]")
    assert read_preprocessing(path) is None  # not an object
    assert read_preprocessing(tmp_path / "missing.keras") is None


def test_every_model_in_the_box_says_its_classes_and_input_and_loads_with_plain_keras(tmp_path):
    from csa_keras.inference.loading import PRETRAINED_ROOT, load_model, pretrained_names, resolve_model_path

    for name in pretrained_names():
        path = resolve_model_path(name)
        preprocessing = read_preprocessing(path)
        metrics = json.loads((PRETRAINED_ROOT / name / "metrics.json").read_text())
        assert preprocessing["class_names"] == metrics["class_names"], name
        model = load_model(path)
        assert preprocessing["input"]["shape"][:2] == list(model.input_shape[1:3]), name
        faces = np.random.default_rng(3).random((2, *model.input_shape[1:]), dtype=np.float32)
        imports = "import voting_resnet" if metrics["task"] == "voting_resnet" else ""
        there, seen = load_elsewhere(path, faces, tmp_path, imports=imports)
        assert seen["preprocessing"] == preprocessing
        assert_same(there, model.predict(faces, verbose=0))
