"""The Voting ResNet-18: parameters, shapes, voting, the crop loss, saving and one training step.

The model, the regroup and vote layers and the crop loss also go through the
Keras contract of ``keras_contract`` (config round trip, ``.keras`` save and
load without ``custom_objects``, symbolic shapes for an unknown batch).
"""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_contract import assert_config_round_trip, run_layer_contract, run_model_contract

from voting_resnet.layers import Regroup, Voting, hard_vote, soft_vote, vote
from voting_resnet.losses import CropCrossEntropy
from voting_resnet.models import build_voting_resnet, crop_size, feature_size


@pytest.fixture(scope="module")
def model_for():
    """``model_for(k)``: the 7-class model split after module ``k``, built once per test module.

    An 11M-parameter build costs a noticeable share of these tests' time;
    the models are dropped when the module's tests are done.
    """
    models = {}

    def get(split_after):
        if split_after not in models:
            models[split_after] = build_voting_resnet(split_after=split_after)
        return models[split_after]

    yield get
    models.clear()


def images(n, seed=0, size=48, channels=3):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def test_trainable_parameters_match_the_paper(model_for):
    model = model_for(0)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 11_172_423
    # BatchNormalization moving statistics: 2 x (64*5 + 128*5 + 256*5 + 512*5) = 9,600
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 9_600


def test_layer_names_and_structure(model_for):
    model = model_for(1)
    names = {layer.name for layer in model.layers}
    for name in ["stem_conv", "stem_bn", "stem_relu", "stack1_block1_conv1", "stack1_block1_bn1",
                 "stack1_block1_relu1", "stack1_block1_conv2", "stack1_block1_bn2", "stack1_block1_add",
                 "stack1_block1_out", "stack2_block1_shortcut_conv", "stack2_block1_shortcut_bn",
                 "stack4_block2_out", "crop_and_mirror", "avg_pool", "logits", "crop_logits", "vote"]:
        assert name in names, name
    assert "stack1_block1_shortcut_conv" not in names and "stack2_block2_shortcut_conv" not in names
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert model.output_names == ["crop_logits", "vote"]
    layer_order = [layer.name for layer in model.layers]
    assert layer_order.index("stack1_block2_out") < layer_order.index("crop_and_mirror") \
        < layer_order.index("stack2_block1_conv1")
    assert model.get_layer("stack4_block2_out").output.shape[1:] == (5, 5, 512)


def test_strided_convolution_pads_like_pytorch(model_for):
    """Stride-2 3x3 convs pad one pixel on every side (PyTorch's padding=1), not TF's 'same'."""
    model = model_for(0)
    probe = keras.Model(model.input, [model.get_layer("stack1_block2_out").output,
                                      model.get_layer("stack2_block1_conv1").output])
    before, after = probe(images(2, seed=1))
    kernel = model.get_layer("stack2_block1_conv1").kernel
    expected = tf.nn.conv2d(before, kernel, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])
    assert after.shape == (2, 24, 24, 128)
    np.testing.assert_allclose(after.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("split_after, views", [(0, 1), (1, 10), (2, 10), (3, 10)])
def test_output_shapes_for_every_split(split_after, views, model_for, tmp_path):
    model = model_for(split_after)
    out = run_model_contract(model, images(2, seed=split_after), tmp_path,
                             {"crop_logits": (2, views, 7), "vote": (2, 7)}, rtol=1e-5, atol=1e-6).output
    assert set(out) == {"crop_logits", "vote"}
    np.testing.assert_allclose(out["vote"], soft_vote(out["crop_logits"]), rtol=1e-5, atol=1e-6)
    if split_after:
        assert model.get_layer("crop_and_mirror").output.shape[1] == crop_size(48, split_after)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 11_172_423


def test_split_helpers_and_invalid_arguments():
    assert [feature_size(48, k) for k in range(4)] == [48, 48, 24, 12]
    assert [crop_size(48, k) for k in range(4)] == [48, 40, 20, 10]
    with pytest.raises(ValueError, match="split_after"):
        build_voting_resnet(split_after=4)
    with pytest.raises(ValueError, match="voting must be one of soft, hard"):
        build_voting_resnet(voting="average")
    with pytest.raises(ValueError, match="voting must be one of soft, hard"):
        Voting(mode="majority")


def constructed_logits():
    """Image 0: 3 views for class 0, 1 for class 1. Image 1: a 2-2 tie between classes 1 and 2
    whose class-2 views are more confident, so the soft score breaks the tie towards 2."""
    logits = np.full((2, 4, 3), -5.0)
    for view, cls in enumerate([0, 0, 0, 1]):
        logits[0, view, cls] = 2.0
    logits[1, 0, 1], logits[1, 1, 1] = 1.0, 1.0
    logits[1, 2, 2], logits[1, 3, 2] = 4.0, 4.0
    return logits.astype("float32")


def test_soft_and_hard_voting_on_constructed_logits(tmp_path):
    logits = constructed_logits()
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    soft = probs.mean(axis=1)
    counts = np.array([[3, 1, 0], [0, 2, 2]], dtype=float)
    hard = (counts + 0.5 * soft) / 4.5
    np.testing.assert_allclose(soft_vote(logits), soft, rtol=1e-6)
    np.testing.assert_allclose(hard_vote(logits), hard, rtol=1e-6)
    np.testing.assert_allclose(vote(logits, "hard"), hard, rtol=1e-6)
    for mode, expected in [("soft", soft), ("hard", hard)]:
        result = run_layer_contract(Voting, {"mode": mode}, logits, (2, 3), tmp_path,
                                    rtol=0, atol=0)
        np.testing.assert_allclose(result.output, expected, rtol=1e-5)
        assert result.clone.get_config()["mode"] == mode
    np.testing.assert_allclose(hard.sum(axis=1), 1.0)
    assert hard.argmax(axis=1).tolist() == [0, 2]


def test_hard_vote_follows_the_majority_against_the_soft_score(tmp_path):
    """Two confident views for class 0 lose to three lukewarm views for class 1."""
    logits = np.zeros((1, 5, 2), dtype="float32")
    logits[0, :2, 0] = 9.0
    logits[0, 2:, 1] = 0.2
    assert soft_vote(logits).argmax() == 0
    assert hard_vote(logits).argmax() == 1
    assert run_layer_contract(Voting, {"mode": "hard"}, logits, (1, 2), tmp_path,
                              rtol=0, atol=0).output.argmax() == 1


def test_hard_vote_layer_matches_numpy_when_a_views_logits_tie(tmp_path):
    """Equal maxima within a view count for the first class, as NumPy's arg-max; -0.0 ties 0.0."""
    rng = np.random.default_rng(3)
    logits = rng.integers(-2, 3, size=(64, 10, 7)).astype("float32")
    logits[0, 0] = [-0.0, 0.0, -1.0, -2.0, -0.0, -1.0, -2.0]
    logits[0, 1] = [-1.0, -0.0, 0.0, -2.0, -1.0, -1.0, -2.0]
    logits[1] = 1.0
    ties = (logits == logits.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    assert ties.mean() > 0.3
    result = run_layer_contract(Voting, {"mode": "hard"}, logits, (64, 7), tmp_path, rtol=0, atol=0)
    np.testing.assert_allclose(result.output, hard_vote(logits), rtol=1e-6)
    assert result.output[1].argmax() == 0 and result.output[1, 0] == pytest.approx((10 + 0.5 / 7) / 10.5)


@pytest.mark.parametrize("num_views", [1, 10])
def test_regroup_puts_each_images_views_side_by_side(num_views, tmp_path):
    """``(B * V, K) -> (B, V, K)``: row ``b * V + v`` of the input is view ``v`` of image ``b``."""
    rows = np.arange(3 * num_views * 4, dtype="float32").reshape(3 * num_views, 4)
    out = run_layer_contract(Regroup, {"num_views": num_views}, rows, (3, num_views, 4), tmp_path,
                             rtol=0, atol=0).output
    for b in range(3):
        for v in range(num_views):
            np.testing.assert_array_equal(out[b, v], rows[b * num_views + v])
    with pytest.raises(ValueError, match="num_views"):
        Regroup(0)


def test_voting_checks_the_number_of_views():
    with pytest.raises(ValueError, match="expects 10 views"):
        Voting(num_views=10)(keras.Input((5, 7)))


@pytest.mark.parametrize("label_shape", [(3,), (3, 1)])
def test_crop_cross_entropy_matches_numpy(label_shape):
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, 10, 7)).astype("float32")
    labels = np.array([4, 0, 6]).reshape(label_shape)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = -log_probs[np.arange(3), :, labels.ravel()].mean()
    loss = float(CropCrossEntropy()(labels, logits))
    assert loss == pytest.approx(expected, rel=1e-5)
    probs = np.exp(log_probs)
    assert float(CropCrossEntropy(from_logits=False)(labels, probs)) == pytest.approx(expected, rel=1e-4)


def test_crop_cross_entropy_with_label_smoothing_matches_numpy():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(3, 10, 7)).astype("float32")
    labels = np.array([4, 0, 6])
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    target = np.full((3, 1, 7), 0.1 / 7)
    target[np.arange(3), 0, labels] += 0.9
    expected = -(target * log_probs).sum(axis=-1).mean()
    loss = CropCrossEntropy(label_smoothing=0.1)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert assert_config_round_trip(loss).label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        CropCrossEntropy(label_smoothing=1.0)


def test_crop_cross_entropy_with_one_view_is_the_plain_cross_entropy():
    logits = np.random.default_rng(8).normal(size=(4, 1, 5)).astype("float32")
    labels = np.array([0, 1, 2, 4])
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits[:, 0])
    assert float(CropCrossEntropy()(labels, logits)) == pytest.approx(float(plain), rel=1e-6)
    restored = assert_config_round_trip(CropCrossEntropy(from_logits=False))
    assert restored.from_logits is False
    with pytest.raises(ValueError, match="crop logits"):
        CropCrossEntropy()(labels, logits[:, 0])


def test_keras_round_trip_keeps_hard_voting(tmp_path):
    model = build_voting_resnet(split_after=3, voting="hard", num_classes=5)
    x = images(2, seed=9)
    loaded = run_model_contract(model, x, tmp_path, {"crop_logits": (2, 10, 5), "vote": (2, 5)},
                                rtol=1e-5, atol=1e-6).loaded
    assert loaded.get_layer("vote").get_config()["mode"] == "hard"
    assert loaded.get_layer("crop_and_mirror").get_config()["crop_fraction"] == pytest.approx(5 / 6)
    after = loaded(x, training=False)
    hard = keras.ops.convert_to_numpy(after["vote"])
    np.testing.assert_allclose(hard, hard_vote(keras.ops.convert_to_numpy(after["crop_logits"])), rtol=1e-5)


_LOAD_IN_A_FRESH_INTERPRETER = """
import sys
import numpy as np
import keras
import voting_resnet

path, reference = sys.argv[1], np.load(sys.argv[2])
model = keras.models.load_model(path)
out = model(reference["x"], training=False)
for key in ("crop_logits", "vote"):
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out[key]), reference[key], rtol=1e-5, atol=1e-6)
assert model.compiled, "the compile config was not restored"
print(type(model.get_layer("crop_and_mirror")).__name__, type(model.get_layer("vote")).__name__,
      model.get_layer("vote").mode, type(model.loss["crop_logits"]).__name__)
"""


def test_saved_model_loads_in_a_fresh_interpreter_after_importing_the_package(tmp_path):
    """``import voting_resnet`` alone must register what a saved, compiled model holds.

    A script, notebook or serving process that loads a checkpoint imports the
    package, not its submodules; the load must then need no
    ``custom_objects``. Run in a new interpreter, where nothing this test
    module imported is registered.
    """
    from voting_resnet.training import compile_voting_resnet

    model = compile_voting_resnet(build_voting_resnet(split_after=2, voting="hard", num_classes=4), 1e-3)
    x = images(2, seed=11)
    out = model(x, training=False)
    path = tmp_path / "compiled.keras"
    model.save(path)
    np.savez(tmp_path / "reference.npz", x=x, **{k: keras.ops.convert_to_numpy(v) for k, v in out.items()})
    done = subprocess.run([sys.executable, "-c", _LOAD_IN_A_FRESH_INTERPRETER, str(path),
                           str(tmp_path / "reference.npz")],
                          cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-4:] == ["CropAndMirror", "Voting", "hard", "CropCrossEntropy"], done.stdout


def test_mixed_precision_keeps_logits_and_vote_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_voting_resnet(split_after=3, input_shape=(48, 48, 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("stack1_block1_conv1").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert [t.dtype for t in model.outputs] == ["float32", "float32"]
    loaded = run_model_contract(model, images(2, seed=12, channels=1), tmp_path,
                                {"crop_logits": (2, 10, 7), "vote": (2, 7)}, rtol=1e-5, atol=1e-6).loaded
    assert loaded.get_layer("stack1_block1_conv1").compute_dtype == "float16"
    assert [t.dtype for t in loaded.outputs] == ["float32", "float32"]


def test_one_training_step_with_the_crop_loss():
    model = build_voting_resnet(split_after=3, num_classes=4)
    model.compile(optimizer=keras.optimizers.Adam(2e-4),
                  loss={"crop_logits": CropCrossEntropy(), "vote": None},
                  metrics={"vote": ["sparse_categorical_accuracy"]})
    x, y = images(4, seed=10), np.array([0, 1, 2, 3])
    kernel = model.get_layer("stem_conv").kernel
    start = kernel.numpy().copy()
    history = model.fit(x, {"crop_logits": y, "vote": y}, batch_size=4, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss) and 0.5 < loss < 10.0  # ln 4 = 1.39 at chance
    assert 0.0 <= history.history["vote_sparse_categorical_accuracy"][0] <= 1.0
    assert not np.allclose(kernel.numpy(), start)


def test_crop_views_are_the_crop_layers_output_and_a_baseline_has_none():
    import numpy as np
    import pytest

    from voting_resnet.models import build_voting_resnet, crop_views

    model = build_voting_resnet(7, (48, 48, 3), split_after=3)
    images = np.random.default_rng(0).random((2, 48, 48, 3)).astype("float32")
    views = crop_views(model, images)
    assert views.shape == (20, 10, 10, 256)
    np.testing.assert_allclose(views[5:10], views[0:5][:, :, ::-1][[1, 0, 3, 2, 4]], atol=0)
    with pytest.raises(ValueError, match="CropAndMirror"):
        crop_views(build_voting_resnet(7, (48, 48, 3), split_after=0), images)
