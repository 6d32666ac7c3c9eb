"""Figures (csa_keras.evaluation.figures) and Grad-CAM (csa_keras.evaluation.gradcam)."""
import csv

import matplotlib.image as mpimg
import numpy as np
import pytest

from csa_keras.evaluation import figures
from csa_keras.evaluation.figures import (
    overlay,
    plot_confusion_matrix,
    plot_curves,
    plot_gradcam,
    plot_reconstructions,
    read_history_csv,
)
from csa_keras.evaluation.gradcam import heatmap_mass_in, one_per_class
from csa_keras.evaluation.metrics import psnr


@pytest.fixture
def drawn(monkeypatch):
    """Record every Figure a plotting function saves, then save it for real."""
    saved = []
    original = figures.files.save_figure

    def record(fig, path, **kwargs):
        saved.append(fig)
        return original(fig, path, **kwargs)

    monkeypatch.setattr(figures.files, "save_figure", record)
    return saved


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_images() or ax.get_lines()]


def _png(path):
    assert path.is_file() and path.stat().st_size > 1000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01
    return image


def test_confusion_matrix_figure(tmp_path, drawn):
    cm = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]])
    path = plot_confusion_matrix(cm, ["anger", "happiness", "surprise"], tmp_path / "cm.png",
                                 title="holdout")
    assert path == tmp_path / "cm.png"
    image = _png(path)
    assert image.shape[1] > 1.5 * image.shape[0]
    counts, normalised = _panels(drawn[0])
    assert [t.get_text() for t in counts.texts] == ["5", "1", "0", "2", "6", "2", "0", "0", "0"]
    assert [t.get_text() for t in normalised.texts][:3] == ["0.83", "0.17", "0.00"]
    assert [t.get_text() for t in normalised.texts][6:] == ["0.00", "0.00", "0.00"]
    assert [t.get_text() for t in counts.get_xticklabels()] == ["anger", "happiness", "surprise"]
    assert not list(tmp_path.glob(".*partial*"))
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(cm, ["a", "b"], tmp_path / "bad.png")


def test_curves_single_history(tmp_path, drawn):
    history = {"loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.8, 0.7],
               "accuracy": [0.3, 0.5, 0.6], "val_accuracy": [0.2, 0.4, 0.5]}
    _png(plot_curves(history, tmp_path / "curves.png"))
    loss, accuracy = _panels(drawn[0])
    assert loss.get_title() == "loss" and accuracy.get_title() == "accuracy"
    train, val = accuracy.get_lines()
    np.testing.assert_allclose(train.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(val.get_ydata(), [0.2, 0.4, 0.5])


def test_curves_pretraining_and_finetuning_in_a_row(tmp_path, drawn):
    phases = {"pretrain": {"loss": [0.05, 0.03], "val_loss": [0.06, 0.04]},
              "finetune": {"loss": [1.2, 0.8, 0.5], "accuracy": [0.4, 0.6, 0.8],
                           "val_loss": [1.3, 0.9, 0.7], "val_accuracy": [0.3, 0.5, 0.6],
                           "learning_rate": [1e-3] * 3}}
    image = _png(plot_curves(phases, tmp_path / "curves.png"))
    panels = _panels(drawn[0])
    assert [ax.get_title() for ax in panels] == ["pretrain: loss", "finetune: loss",
                                                 "finetune: accuracy"]
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 1
    assert image.shape[1] > 2.5 * image.shape[0]


def test_curves_from_history_csv(tmp_path, drawn):
    path = tmp_path / "history.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phase", "epoch", "loss", "val_loss", "accuracy", "val_accuracy"])
        writer.writerow(["pretrain", 1, 0.05, 0.06, "", ""])
        writer.writerow(["pretrain", 2, 0.03, 0.04, "", ""])
        writer.writerow(["finetune", 1, 1.2, 1.3, 0.4, 0.3])
    assert read_history_csv(path) == {
        "pretrain": {"loss": [0.05, 0.03], "val_loss": [0.06, 0.04]},
        "finetune": {"loss": [1.2], "val_loss": [1.3], "accuracy": [0.4], "val_accuracy": [0.3]}}
    _png(plot_curves(path, tmp_path / "curves.png"))
    assert len(_panels(drawn[0])) == 3

    logger = tmp_path / "csvlogger.csv"
    logger.write_text("epoch,loss,val_loss\n0,0.5,0.6\n1,0.4,0.5\n")
    assert read_history_csv(logger) == {"train": {"loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}}


@pytest.mark.parametrize("history, message", [
    ({}, "history must be"),
    ({"pretrain": {"loss": [1.0]}, "loss": [1.0]}, "mixes"),
    ("missing.csv", "does not exist"),
])
def test_curves_errors(tmp_path, history, message):
    if history == "missing.csv":
        history = tmp_path / history
    with pytest.raises(ValueError, match=message):
        plot_curves(history, tmp_path / "c.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n1,abc\n")
    with pytest.raises(ValueError, match="not a number"):
        read_history_csv(bad)


def test_reconstructions_figure(tmp_path, drawn):
    rng = np.random.default_rng(0)
    originals = rng.random((5, 48, 48, 1)).astype("float32")
    noise = rng.normal(0, 0.05, originals.shape)
    reconstructions = np.clip(originals + noise, 0, 1).astype("float32")
    reconstructions[2] = originals[2]
    _png(plot_reconstructions(originals, reconstructions, tmp_path / "rec.png", n=8))
    axes = drawn[0].axes
    assert len(axes) == 10
    expected = psnr(originals, reconstructions)
    titles = [ax.get_title() for ax in axes[5:]]
    assert titles[0] == f"{expected[0]:.1f} dB"
    assert titles[2] == "exact"
    assert all(ax.get_title() == "original" for ax in axes[:5])

    uint8 = (originals * 255).astype(np.uint8)
    _png(plot_reconstructions(uint8, uint8, tmp_path / "rec3.png", n=3))
    assert len(drawn[1].axes) == 6
    with pytest.raises(ValueError, match="differ in shape"):
        plot_reconstructions(originals, reconstructions[:2], tmp_path / "x.png")


def test_overlay_blends_jet_colours():
    face = np.full((4, 4, 1), 0.5, dtype=np.float32)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    np.testing.assert_allclose(overlay(face, heat, alpha=0.0), 0.5)
    blended = overlay(face, heat, alpha=1.0)
    np.testing.assert_allclose(blended[0, 0], [0.5, 0.0, 0.0], atol=0.01)   # jet(1) is dark red
    np.testing.assert_allclose(blended[1, 1], [0.0, 0.0, 0.5], atol=0.01)   # jet(0) is dark blue
    with pytest.raises(ValueError, match="does not match"):
        overlay(face, np.zeros((3, 3)))


def test_gradcam_figure(tmp_path, drawn):
    faces = np.random.default_rng(1).random((3, 48, 48, 1)).astype("float32")
    maps = np.random.default_rng(2).random((3, 48, 48)).astype("float32")
    titles = ["anger", "fear", "happiness"]
    _png(plot_gradcam(faces, maps, titles, tmp_path / "gradcam.png"))
    axes = drawn[0].axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == titles
    shown = axes[3].get_images()[0].get_array()
    np.testing.assert_allclose(shown, overlay(faces[0], maps[0], 0.4), rtol=1e-6)
    with pytest.raises(ValueError, match="must match"):
        plot_gradcam(faces, maps[:2], titles, tmp_path / "x.png")


def test_heatmap_mass_in_hand_arrays():
    heat = np.zeros((4, 4))
    heat[0, :2] = [1.0, 3.0]
    heat[3, 3] = 4.0
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    assert heatmap_mass_in(mask, heat) == pytest.approx(0.5)
    assert heatmap_mass_in(np.ones((4, 4), bool), heat) == pytest.approx(1.0)
    assert heatmap_mass_in(mask, np.ones((4, 4))) == pytest.approx(4 / 16)
    assert heatmap_mass_in(mask, np.zeros((4, 4))) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        heatmap_mass_in(mask, np.ones((3, 3)))
    with pytest.raises(ValueError, match="negative"):
        heatmap_mass_in(mask, -np.ones((4, 4)))


def test_one_per_class():
    labels = np.array([2, 0, 2, 2, 0, 3, 3])
    index = one_per_class(labels, 5, seed=0)
    assert labels[index].tolist() == [0, 2, 3]
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, one_per_class(labels, 5, seed=0))
    picks = {tuple(one_per_class(labels, 5, seed=s)) for s in range(20)}
    assert len(picks) > 1
    assert one_per_class(labels, 5, seed=np.random.default_rng(3)).shape == (3,)


# Grad-CAM on a tiny CSA classifier ----------------------------------------------------------

keras = pytest.importorskip("keras")

from csa_keras.csa.model import LAST_CONV_LAYER, build_classifier, build_encoder  # noqa: E402
from csa_keras.evaluation.gradcam import gradcam  # noqa: E402

SMALL = (4, 6, 8, 10)


def _classifier(closure="code6", channels=1, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return build_classifier(build_encoder((48, 48, channels), SMALL, closure=closure),
                            classes, dense_units=8)


def _faces(n, channels=1, seed=0):
    return np.random.default_rng(seed).random((n, 48, 48, channels)).astype("float32")


@pytest.mark.parametrize("closure, channels", [("code6", 1), ("pool4", 1), ("code6", 3)])
def test_gradcam_maps_have_the_input_size_and_lie_in_unit_range(closure, channels):
    model = _classifier(closure, channels)
    x = _faces(4, channels)
    before = np.asarray(model(x))
    maps = gradcam(model, x, [0, 1, 2, 0], LAST_CONV_LAYER)
    assert maps.shape == (4, 48, 48)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.max() > 0.5
    assert model.get_layer("predictions").activation is keras.activations.softmax
    np.testing.assert_array_equal(np.asarray(model(x)), before)


def test_gradcam_equals_a_hand_computation():
    """Selvaraju et al.: ReLU(sum_k mean(d logit / d A_k) * A_k), upsampled, min-max normalised."""
    import tensorflow as tf
    from scipy.ndimage import zoom

    model = _classifier(seed=4)
    x = _faces(3, seed=5)
    classes = np.array([0, 2, 1])
    kernel, bias = model.get_layer("predictions").get_weights()
    probe = keras.Model(model.input, [model.get_layer(LAST_CONV_LAYER).output,
                                      model.get_layer("dense").output])
    with tf.GradientTape() as tape:
        features, hidden = probe(tf.constant(x), training=False)
        logits = tf.matmul(hidden, kernel) + bias
        score = tf.gather(logits, classes, axis=1, batch_dims=1)
    grads = tape.gradient(score, features).numpy()
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((features.numpy() * weights).sum(-1), 0.0)
    assert cam.max() > 0
    cam = zoom(cam, (1, 8, 8), order=1)
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    expected = (cam - lo) / (hi - lo + keras.config.epsilon())
    np.testing.assert_allclose(gradcam(model, x, classes, LAST_CONV_LAYER), expected, atol=1e-4)


def test_gradcam_on_one_output_of_a_two_output_model():
    base = _classifier()
    aux = keras.layers.Dense(2, name="aux")(base.get_layer("dense").output)
    model = keras.Model(base.input, [base.output, aux])
    x = _faces(2)
    with pytest.raises(ValueError, match="output_index"):
        gradcam(model, x, [0, 1], LAST_CONV_LAYER)
    single = gradcam(base, x, [0, 1], LAST_CONV_LAYER)
    np.testing.assert_allclose(gradcam(model, x, [0, 1], LAST_CONV_LAYER, output_index=0), single,
                               atol=1e-6)
    assert gradcam(model, x, [1, 1], LAST_CONV_LAYER, output_index=1).shape == (2, 48, 48)
    with pytest.raises(ValueError, match="out of range"):
        gradcam(model, x, [0, 1], LAST_CONV_LAYER, output_index=2)


def test_gradcam_with_a_score_function_and_errors():
    model = _classifier()
    x = _faces(2)
    by_score = gradcam(model, x, None, LAST_CONV_LAYER, score=lambda out: out[:, 1])
    np.testing.assert_allclose(by_score, gradcam(model, x, [1, 1], LAST_CONV_LAYER), atol=1e-6)
    with pytest.raises(ValueError, match="layer_name must name a layer.*enc9_conv"):
        gradcam(model, x, [0, 1], layer_name="enc9_conv")
    with pytest.raises(ValueError, match="layer_name must name a convolutional layer.*dense"):
        gradcam(model, x, [0, 1], layer_name="dense")
    with pytest.raises(ValueError, match="2 images"):
        gradcam(model, x, [0], LAST_CONV_LAYER)
    with pytest.raises(ValueError, match="0..2"):
        gradcam(model, x, [0, 3], LAST_CONV_LAYER)
    with pytest.raises(ValueError, match="class_indices"):
        gradcam(model, x, None, LAST_CONV_LAYER)
    with pytest.raises(ValueError, match="48x48"):
        gradcam(model, _faces(2)[:, :40, :40], [0, 1], LAST_CONV_LAYER)
    with pytest.raises(TypeError, match="layer_name"):
        gradcam(model, x, [0, 1])


def test_gradcam_of_a_mixed_precision_model_is_that_of_its_float32_twin():
    """float32_copy: same weights computed in float32, so the same maps as a float32 model."""
    from csa_keras.evaluation.gradcam import float32_copy

    reference = _classifier(seed=2)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _classifier(seed=2)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    assert mixed.get_layer(LAST_CONV_LAYER).compute_dtype == "bfloat16"
    twin = float32_copy(mixed)
    assert twin is not mixed and all(layer.compute_dtype == "float32" for layer in twin.layers)
    assert float32_copy(reference) is reference
    x = _faces(3, seed=1)
    np.testing.assert_allclose(gradcam(mixed, x, [0, 1, 2], LAST_CONV_LAYER),
                               gradcam(reference, x, [0, 1, 2], LAST_CONV_LAYER), atol=1e-5)
    assert mixed.get_layer(LAST_CONV_LAYER).compute_dtype == "bfloat16"


def test_layer_cams_are_the_unnormalised_maps_gradcam_resizes():
    """The core engine's raw maps: ReLU'd, in the layer's units, at the layer's 6x6 resolution."""
    from scipy.ndimage import zoom

    from csa_keras.evaluation.gradcam import layer_cams, normalize_maps

    model = _classifier(seed=4)
    x = _faces(3, seed=5)
    cams = layer_cams(model, x, [0, 2, 1], LAST_CONV_LAYER)
    assert cams.shape == (3, 6, 6) and cams.dtype == np.float32 and cams.min() >= 0
    np.testing.assert_allclose(normalize_maps(zoom(cams, (1, 8, 8), order=1)),
                               gradcam(model, x, [0, 2, 1], LAST_CONV_LAYER), atol=1e-5)
    assert normalize_maps(np.zeros((2, 4, 4))).max() == 0
