"""Grad-CAM of the Voting ResNet put back on the whole image (voting_resnet.gradcam)."""
import numpy as np
import pytest

from voting_resnet.gradcam import layer_cams, place_views, view_boxes, voter_gradcam

# The five crops of a 48x48 input in input pixels, (top, left, bottom, right), in
# CropAndMirror's order (top-left, top-right, bottom-left, bottom-right, centre):
# side 40 = 5/6 * 48, the far corners start at 48 - 40 = 8, the centre at 4.
CROPS_48 = [(0, 0, 40, 40), (0, 8, 40, 48), (8, 0, 48, 40), (8, 8, 48, 48), (4, 4, 44, 44)]
# The same crops cut from the mirrored map, reflected back: left and right swap.
MIRRORED_48 = [(0, 8, 40, 48), (0, 0, 40, 40), (8, 8, 48, 48), (8, 0, 48, 40), (4, 4, 44, 44)]


def _coverage(boxes, size=48):
    count = np.zeros((size, size))
    for top, left, bottom, right in boxes:
        count[top:bottom, left:right] += 1
    return count


@pytest.mark.parametrize("map_size", [48, 24, 12])
def test_view_boxes_are_the_crops_in_input_pixels(map_size):
    """Splits 1, 2, 3 cut 40-, 20-, 10-pixel crops of 48-, 24-, 12-pixel maps: the same boxes at 48x48."""
    boxes = view_boxes(48, map_size, 10)
    assert [b[:4] for b in boxes] == CROPS_48 + MIRRORED_48
    assert [b[4] for b in boxes] == [False] * 5 + [True] * 5
    assert [b[:4] for b in view_boxes(48, map_size, 5)] == CROPS_48
    assert view_boxes(48, map_size, 1) == [(0, 0, 48, 48, False)]


@pytest.mark.parametrize("view_side", [5, 20])
def test_maps_of_ones_reproduce_the_coverage_geometry(view_side):
    ones = np.ones((10, view_side, view_side), np.float32)
    summed = place_views(ones, 48, 24, average=False)
    expected = _coverage(CROPS_48 + MIRRORED_48)
    np.testing.assert_allclose(summed, expected, atol=1e-6)
    assert summed[0, 0] == 2 and summed[24, 24] == 10 and summed[0, 20] == 4 and summed[5, 5] == 4
    np.testing.assert_allclose(place_views(ones, 48, 24), np.ones((48, 48)), atol=1e-6)
    np.testing.assert_allclose(place_views(ones[:5], 48, 24, average=False), _coverage(CROPS_48), atol=1e-6)


@pytest.mark.parametrize("view_side, block", [(20, 1), (5, 4)])
def test_hot_pixel_of_the_mirrored_top_left_view_lands_top_right(view_side, block):
    """The mirrored top-left crop's top-left pixel is the image's top-right corner.

    Bilinear resizing by ``f = 40 / view_side`` with half-pixel centres holds
    the corner value for ``floor(f / 2)`` output pixels (1 for 20 -> 40, 4 for
    5 -> 40). Two views cover that corner (top-right and mirrored top-left),
    so the averaged peak is 1/2.
    """
    views = np.zeros((10, view_side, view_side), np.float32)
    views[5, 0, 0] = 1.0
    placed = place_views(views, 48, 24)
    peak = np.argwhere(placed == placed.max())
    assert placed.max() == pytest.approx(0.5)
    assert peak[:, 0].min() == 0 and peak[:, 0].max() == block - 1
    assert peak[:, 1].min() == 48 - block and peak[:, 1].max() == 47
    outside = np.ones((48, 48), bool)
    outside[0:40, 8:48] = False
    assert np.all(placed[outside] == 0) and placed.sum() > 0

    views[:] = 0
    views[0, 0, 0] = 1.0
    unmirrored = place_views(views, 48, 24)
    assert np.argwhere(unmirrored == unmirrored.max()).max(axis=0).tolist() == [block - 1, block - 1]
    np.testing.assert_allclose(unmirrored, placed[:, ::-1], atol=1e-6)


def test_place_views_rejects_bad_input():
    with pytest.raises(ValueError, match="num_views"):
        place_views(np.ones((3, 5, 5)), 48, 24)
    with pytest.raises(ValueError, match="view_maps"):
        place_views(np.ones((10, 5)), 48, 24)
    with pytest.raises(ValueError, match="input_size"):
        place_views(np.ones((1, 5, 5)), (48, 0), 24)


def _tiny_voter():
    import keras

    from voting_resnet.layers import CropAndMirror, Regroup

    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv0")(inputs)
    crop = CropAndMirror(name="crop_and_mirror")
    x = keras.layers.Conv2D(3, 3, padding="same", name="feat")(crop(x))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    logits = Regroup(crop.num_views, name="crop_logits")(x)
    return keras.Model(inputs, {"crop_logits": logits}, name="tiny_voter")


@pytest.fixture(scope="module")
def tiny_voter():
    """A small voting CNN whose explained layer feeds a linear head, so Grad-CAM has a closed form.

    ``feat`` (no activation) -> global average pool -> Dense: the score of
    class ``c`` for a view is ``mean(feat) @ W[:, c] + b``, so the Grad-CAM
    weights are ``W[:, c] / (h * w)`` and the map ``ReLU(feat @ W[:, c]) / (h * w)``.
    """
    return _tiny_voter()


def test_view_cams_match_the_closed_form(tiny_voter):
    import keras

    images = np.random.default_rng(0).random((3, 12, 12, 1)).astype(np.float32)
    classes = np.array([0, 2, 1])
    cams, per_view = layer_cams(tiny_voter, images, classes, "feat", batch_size=2)
    assert per_view and cams.shape == (3, 10, 10, 10)

    feat = keras.Model(tiny_voter.inputs, tiny_voter.get_layer("feat").output).predict(images, verbose=0)
    feat = feat.reshape(3, 10, 10, 10, 3)
    kernel = tiny_voter.get_layer("logits").get_weights()[0]
    expected = np.maximum(np.einsum("ivhwc,ci->ivhw", feat, kernel[:, classes]) / 100.0, 0.0)
    np.testing.assert_allclose(cams, expected, rtol=1e-4, atol=1e-7)
    assert expected.max() > 0

    maps = voter_gradcam(tiny_voter, images, classes, "feat")
    placed = np.stack([place_views(e, 12, 12) for e in expected])
    low, high = placed.min(axis=(1, 2), keepdims=True), placed.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (placed - low) / (high - low + 1e-7), atol=1e-4)


def test_core_engine_gives_each_view_its_own_map(tiny_voter):
    """The core's layer_cams on a layer whose batch is B * 10: one raw map per view, view-major per image."""
    import keras

    from csa_keras.evaluation.gradcam import layer_cams as core_layer_cams

    images = np.random.default_rng(2).random((3, 12, 12, 1)).astype(np.float32)
    classes = np.array([2, 0, 1])
    one_hot = np.eye(3, dtype=np.float32)[classes][:, None, :]
    raw = core_layer_cams(tiny_voter, images, None, "feat", linear_output=False,
                          score=lambda logits: keras.ops.sum(logits * one_hot, axis=(1, 2)))
    assert raw.shape == (30, 10, 10) and raw.max() > 0
    cams, per_view = layer_cams(tiny_voter, images, classes, "feat")
    assert per_view
    np.testing.assert_allclose(cams, raw.reshape(3, 10, 10, 10), rtol=1e-6, atol=1e-9)


def test_mixed_precision_voter_is_explained_on_its_float32_twin(tiny_voter):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _tiny_voter()
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(tiny_voter.get_weights())
    assert mixed.get_layer("feat").compute_dtype == "bfloat16"
    images = np.random.default_rng(4).random((2, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(voter_gradcam(mixed, images, [1, 2], "feat"),
                               voter_gradcam(tiny_voter, images, [1, 2], "feat"), atol=1e-5)
    assert mixed.get_layer("feat").compute_dtype == "bfloat16"


def test_voter_gradcam_rejects_bad_arguments(tiny_voter):
    images = np.zeros((2, 12, 12), np.float32)
    with pytest.raises(ValueError, match="no_such_layer"):
        voter_gradcam(tiny_voter, images, [0, 1], "no_such_layer")
    with pytest.raises(ValueError, match="avg_pool"):
        voter_gradcam(tiny_voter, images, [0, 1], "avg_pool")
    with pytest.raises(ValueError, match="3 class indices for 2 images"):
        voter_gradcam(tiny_voter, images, [0, 1, 2], "feat")
    with pytest.raises(ValueError, match=r"0\.\.2"):
        voter_gradcam(tiny_voter, images, [0, 3], "feat")
    with pytest.raises(ValueError, match="12x12"):
        voter_gradcam(tiny_voter, np.zeros((2, 48, 48, 1)), [0, 1], "feat")
    with pytest.raises(ValueError, match="channels"):
        voter_gradcam(tiny_voter, np.zeros((2, 12, 12, 3)), [0, 1], "feat")


@pytest.fixture(scope="module")
def faces():
    return np.random.default_rng(1).random((2, 48, 48, 1)).astype(np.float32)


@pytest.mark.parametrize("split_after, view_shape", [(0, (1, 6, 6)), (2, (10, 5, 5))])
def test_resnet_maps_cover_the_whole_image(faces, split_after, view_shape):
    from voting_resnet.models import build_voting_resnet

    model = build_voting_resnet(7, split_after=split_after)
    cams, per_view = layer_cams(model, faces, [1, 4])
    assert cams.shape == (2, *view_shape) and per_view == (split_after > 0)
    maps = voter_gradcam(model, faces, [1, 4])
    assert maps.shape == (2, 48, 48) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1
    assert np.allclose(maps.max(axis=(1, 2)), 1, atol=1e-4)
    np.testing.assert_allclose(maps, voter_gradcam(model, np.repeat(faces, 3, axis=-1), [1, 4]), atol=1e-5)


def test_layer_before_the_split_is_plain_gradcam_of_the_summed_views(faces):
    """Before the crop the batch is still B: tf-keras-vis gives the same map for the summed view scores."""
    import keras
    import tensorflow as tf
    from tf_keras_vis.gradcam import Gradcam

    from voting_resnet.models import build_voting_resnet

    model = build_voting_resnet(7, split_after=2)
    images = np.repeat(faces, 3, axis=-1)
    classes = [1, 4]
    cams, per_view = layer_cams(model, images, classes, "stack1_block2_out")
    assert not per_view and cams.shape == (2, 1, 48, 48)

    crop_logits = keras.Model(model.inputs, model.get_layer("crop_logits").output)
    reference = Gradcam(crop_logits, clone=False)(
        lambda out: tf.stack([tf.reduce_sum(out[i, :, c]) for i, c in enumerate(classes)]),
        images, penultimate_layer="stack1_block2_out", seek_penultimate_conv_layer=False)
    maps = voter_gradcam(model, images, classes, "stack1_block2_out")
    np.testing.assert_allclose(maps, reference, atol=1e-4)
    assert reference.max() > 0.99
