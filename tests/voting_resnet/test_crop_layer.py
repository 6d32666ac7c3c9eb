"""CropAndMirror (VRN Algorithm 1) against a NumPy transcription of the algorithm.

Every layer built here also goes through the Keras contract of
``keras_contract`` (config round trip, ``.keras`` save and load, symbolic
shapes for an unknown batch).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_contract import run_layer_contract, run_model_contract

from voting_resnet.layers import CropAndMirror, Regroup, Voting, crop_offsets, hard_vote


def algorithm1(x: np.ndarray, fraction=(5, 6), mirror=True) -> np.ndarray:
    """Algorithm 1 of the paper, literally: per image, 5 crops, mirror, 5 crops; concatenate."""
    patches = []
    for img in x:
        h_old, w_old = img.shape[:2]
        h_new, w_new = h_old * fraction[0] // fraction[1], w_old * fraction[0] // fraction[1]
        starts = [(0, 0), (0, w_old - w_new), (h_old - h_new, 0), (h_old - h_new, w_old - w_new),
                  ((h_old - h_new) // 2, (w_old - w_new) // 2)]
        sources = [img, img[:, ::-1]] if mirror else [img]
        for source in sources:
            for y, x0 in starts:
                patches.append(source[y:y + h_new, x0:x0 + w_new])
    return np.stack(patches)


def coverage(height, width, fraction=(5, 6), mirror=True) -> np.ndarray:
    """How many of the views contain each input pixel (the gradient of their sum)."""
    index = np.arange(height * width, dtype=np.float64).reshape(1, height, width, 1)
    views = algorithm1(index, fraction, mirror)
    return np.bincount(views.ravel().astype(int), minlength=height * width).reshape(height, width)


SHAPES = [(2, 48, 48, 3), (3, 24, 24, 4), (2, 12, 12, 5), (2, 7, 13, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}x{s[2]}")
def test_matches_algorithm1(shape, tmp_path):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    views = (shape[0] * 10, shape[1] * 5 // 6, shape[2] * 5 // 6, shape[3])
    out = run_layer_contract(CropAndMirror, {}, x, views, tmp_path, rtol=0, atol=0).output
    expected = algorithm1(x)
    assert expected.shape == views
    np.testing.assert_array_equal(out, expected)


def test_sample_major_order_centre_and_mirror(tmp_path):
    b, height, width = 2, 7, 13
    x = np.random.default_rng(1).normal(size=(b, height, width, 2)).astype("float32")
    h, w = 5, 10  # floor(5/6 * 7), floor(5/6 * 13)
    out = run_layer_contract(CropAndMirror, {}, x, (b * 10, h, w, 2), tmp_path, rtol=0, atol=0).output
    assert crop_offsets(height, width) == (h, w, [(0, 0), (0, 3), (2, 0), (2, 3), (1, 1)])
    second = out[10:20]  # image 1's views follow image 0's ten
    np.testing.assert_array_equal(second[0], x[1, :h, :w])
    np.testing.assert_array_equal(second[1], x[1, :h, width - w:])
    np.testing.assert_array_equal(second[3], x[1, height - h:, width - w:])
    np.testing.assert_array_equal(second[4], x[1, 1:1 + h, 1:1 + w])
    # mirrored top-left is the flipped top-right crop; the mirrored centre starts at
    # column 1 of the flipped map, i.e. ends at column width - 1 of the original
    np.testing.assert_array_equal(second[5], x[1, :h, width - w:][:, ::-1])
    np.testing.assert_array_equal(second[9], x[1, 1:1 + h, width - 1 - w:width - 1][:, ::-1])


def test_without_mirror_gives_five_views(tmp_path):
    x = np.random.default_rng(2).normal(size=(3, 12, 12, 2)).astype("float32")
    result = run_layer_contract(CropAndMirror, {"mirror": False}, x, (15, 10, 10, 2), tmp_path,
                                rtol=0, atol=0)
    layer, out = result.instance, result.output
    assert layer.num_views == 5 and CropAndMirror().num_views == 10
    np.testing.assert_array_equal(out, algorithm1(x, mirror=False))


def test_other_crop_fraction(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 10, 10, 1)).astype("float32")
    out = run_layer_contract(CropAndMirror, {"crop_fraction": 0.7}, x, (20, 7, 7, 1), tmp_path,
                             rtol=0, atol=0).output
    np.testing.assert_array_equal(out, algorithm1(x, fraction=(7, 10)))


@pytest.mark.parametrize("shape", [(2, 12, 12, 3), (1, 7, 13, 2)])
def test_gradient_counts_covering_crops(shape, tmp_path):
    data = np.random.default_rng(4).normal(size=shape).astype("float32")
    h, w, _ = crop_offsets(shape[1], shape[2])
    layer = run_layer_contract(CropAndMirror, {}, data, (shape[0] * 10, h, w, shape[3]), tmp_path,
                               rtol=0, atol=0).instance
    x = tf.constant(data)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x))
    grad = tape.gradient(total, x).numpy()
    expected = coverage(shape[1], shape[2])
    for b in range(shape[0]):
        for c in range(shape[3]):
            np.testing.assert_array_equal(grad[b, :, :, c], expected)
    assert expected.max() == 10 and expected.min() >= 1


def test_config_round_trip_and_output_shape(tmp_path):
    x = np.random.default_rng(6).normal(size=(2, 12, 12, 3)).astype("float32")
    kwargs = {"crop_fraction": 0.75, "mirror": False, "name": "crops"}
    clone = run_layer_contract(CropAndMirror, kwargs, x, (10, 9, 9, 3), tmp_path, rtol=0, atol=0).clone
    assert (clone.crop_fraction, clone.mirror, clone.name, clone.num_views) == (0.75, False, "crops", 5)


@pytest.mark.parametrize("input_shape, output_shape", [
    ((1, 48, 48, 64), (10, 40, 40, 64)),
    ((4, 24, 24, 128), (40, 20, 20, 128)),
    ((1, 12, 12, 256), (10, 10, 10, 256)),
], ids=["48", "24", "12"])
def test_output_shape_at_the_split_points(input_shape, output_shape, tmp_path):
    """The maps after modules 1-3 of the ResNet-18, symbolic (batch None) and real."""
    x = np.random.default_rng(7).normal(size=input_shape).astype("float32")
    run_layer_contract(CropAndMirror, {}, x, output_shape, tmp_path, rtol=0, atol=0)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="crop_fraction"):
        CropAndMirror(crop_fraction=1.5)
    with pytest.raises(ValueError, match="static height and width"):
        CropAndMirror()(keras.Input((None, None, 3)))
    with pytest.raises(ValueError, match="empty crop"):
        CropAndMirror(crop_fraction=0.1)(keras.Input((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        CropAndMirror()(keras.Input((12, 3)))


def test_inside_a_small_cnn_saves_and_loads(tmp_path):
    """A generic (non-ResNet) CNN with the crop, regroup and vote layers round-trips through .keras."""
    inputs = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = CropAndMirror(name="crop")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, name="dense")(x)
    crop_logits = Regroup(10, name="regroup")(x)
    vote = Voting(mode="hard", name="vote")(crop_logits)
    model = keras.Model(inputs, [crop_logits, vote], name="tiny")
    images = np.random.default_rng(5).uniform(size=(4, 12, 12, 1)).astype("float32")
    result = run_model_contract(model, images, tmp_path, [(4, 10, 3), (4, 3)], rtol=1e-6, atol=0)
    logits, votes = result.output
    np.testing.assert_allclose(votes.sum(axis=1), 1.0, rtol=1e-6)

    features = keras.Model(inputs, model.get_layer("conv").output)(images)
    dense = model.get_layer("dense")
    per_view = algorithm1(keras.ops.convert_to_numpy(features)).mean(axis=(1, 2))
    manual = (per_view @ dense.kernel.numpy() + dense.bias.numpy()).reshape(4, 10, 3)
    np.testing.assert_allclose(logits, manual, rtol=1e-5, atol=1e-5)

    loaded = result.loaded
    assert loaded.get_layer("vote").mode == "hard"
    assert loaded.get_layer("crop").num_views == 10
    np.testing.assert_allclose(votes, hard_vote(logits), rtol=1e-5, atol=1e-6)
