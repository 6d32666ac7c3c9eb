"""Grad-CAM heatmaps through tf-keras-vis (CSA paper §4.3, Fig. 7; VRN §3.1).

Both papers show Grad-CAM (Selvaraju et al., 2017) to argue that the
classifier looks at the eyes, brows and mouth. This module is the project's
one Grad-CAM engine, built on ``tf_keras_vis.gradcam.Gradcam``:

- :func:`gradcam` gives the maps of the explained layer at the input's
  resolution, min-max normalised per image (what the CSA report draws);
- :func:`layer_cams` gives the raw maps ``ReLU(sum_ch mean(d score / d A_ch)
  * A_ch)`` of the layer, one per sample of the layer's own batch. That batch
  may be larger than the input's: after the Voting ResNet's crop layer each
  image is ten views (``B -> B * 10``). tf-keras-vis takes the gradient of
  the summed scores with respect to the layer's output, so every row of the
  layer gets its own gradient, and the Grad-CAM weights are averaged per row;
  placing the views back on the image is the task's job
  (``voting_resnet.gradcam``).

The explained model computes in float32 (:func:`float32_copy`) and, by
default, with its output layer made linear (scores are logits, not softmax
probabilities, as tf-keras-vis recommends). :func:`one_per_class` picks the
faces and :func:`heatmap_mass_in` measures how much of a map falls on a
region, so the papers' claim can be checked.

TensorFlow, Keras and tf-keras-vis are imported inside the functions that
need them, so that ``csa_keras.evaluation`` (metrics) imports without them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: tf-keras-vis' min-max normalisation adds ``keras.config.epsilon()`` to the range.
_EPSILON = 1e-7


def _single_output(model, output_index: int | None):
    import keras

    if output_index is None:
        if len(model.outputs) != 1:
            raise ValueError(f"output_index must choose one of the {len(model.outputs)} outputs of "
                             f"model {model.name!r}. Received: output_index=None")
        return model
    if not -len(model.outputs) <= output_index < len(model.outputs):
        raise ValueError(f"output_index is out of range for the {len(model.outputs)} outputs of "
                         f"model {model.name!r}. Received: output_index={output_index}")
    return keras.Model(model.inputs, model.outputs[output_index],
                       name=f"{model.name}_output{output_index % len(model.outputs)}")


def _float32_policies(node):
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_float32_policies(v) for v in node]
    return node


def float32_copy(model):
    """``model`` itself when it computes in float32, else a float32 copy with its weights.

    A model trained under ``mixed_bfloat16`` or ``mixed_float16`` would give
    16-bit gradients, which tf-keras-vis cannot resize; the maps are computed
    on the float32 twin, whose weights are the same (mixed policies keep
    float32 variables).
    """
    if all(layer.compute_dtype == "float32" for layer in model.layers):
        return model
    twin = model.__class__.from_config(_float32_policies(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def _prepare_images(model, images) -> np.ndarray:
    """``images`` as the float32 batch the model takes.

    ``(N, H, W)`` gains a channel axis, ``uint8`` is scaled by 1/255 (as the
    training pipeline does), and one channel is repeated for a three-channel
    model (as training does for the Voting ResNet).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError("images must be a non-empty batch (N, H, W) or (N, H, W, C). "
                         f"Received: images with shape {images.shape}")
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if len(expected) != 3:
        raise ValueError(f"model must take images (batch, height, width, channels). Received: "
                         f"model {model.name!r} with input shape {tuple(model.inputs[0].shape)}")
    if None not in expected[:2] and tuple(images.shape[1:3]) != tuple(expected[:2]):
        raise ValueError(f"images must be {expected[0]}x{expected[1]} for model {model.name!r}. "
                         f"Received: images of {images.shape[1]}x{images.shape[2]}")
    if images.shape[-1] == 1 and expected[2] == 3:
        images = np.repeat(images, 3, axis=-1)
    if expected[2] is not None and images.shape[-1] != expected[2]:
        raise ValueError(f"images must have {expected[2]} channels for model {model.name!r}. "
                         f"Received: images with {images.shape[-1]} channels")
    return images


def _visualiser(model, images, class_indices, layer_name: str, output_index: int | None,
                score: Callable | None, linear_output: bool):
    """The checked ``(Gradcam, score, images)`` of one Grad-CAM request."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    model = float32_copy(_single_output(model, output_index))
    images = _prepare_images(model, images)
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"layer_name must name a layer of model {model.name!r}. "
                         f"Received: layer_name={layer_name!r}") from None
    if len(layer.output.shape) != 4:
        raise ValueError("layer_name must name a convolutional layer, with output (batch, height, "
                         f"width, channels). Received: layer_name={layer_name!r} with output shape "
                         f"{tuple(layer.output.shape)}")
    if score is None:
        if class_indices is None:
            raise ValueError("class_indices (one class per image) or score must be given. "
                             "Received: class_indices=None, score=None")
        classes = np.asarray(class_indices).astype(np.int64).ravel()
        if len(classes) != len(images):
            raise ValueError("class_indices must hold one class per image. "
                             f"Received: {len(classes)} class indices for {len(images)} images")
        n_out = int(model.outputs[0].shape[-1])
        if classes.min() < 0 or classes.max() >= n_out:
            raise ValueError(f"class_indices must lie in 0..{n_out - 1}. "
                             f"Received: class_indices in {classes.min()}..{classes.max()}")
        score = CategoricalScore(classes.tolist())
    visualiser = Gradcam(model, model_modifier=ReplaceToLinear() if linear_output else None,
                         clone=True)
    return visualiser, score, images


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each map of ``(N, H, W)`` to [0, 1], as tf-keras-vis does.

    ``(x - min) / (max - min + 1e-7)`` per map; a map with no positive
    evidence (all zeros) stays all zeros, and NaNs become 0.
    """
    maps = np.asarray(maps, dtype=np.float32)
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    high = maps.max(axis=axes, keepdims=True)
    maps = np.nan_to_num((maps - low) / (high - low + np.float32(_EPSILON)), nan=0.0)
    return np.clip(maps, 0.0, 1.0).astype(np.float32)


def layer_cams(model,
               images: np.ndarray,
               class_indices: Sequence[int] | np.ndarray | None,
               layer_name: str,
               output_index: int | None = None,
               score: Callable | None = None,
               linear_output: bool = True) -> np.ndarray:
    """Raw Grad-CAM maps of one layer, ``(M, h, w)``: neither resized nor normalised.

    ``M`` is the layer's own batch: ``N`` for the images, or ``N * V`` for a
    layer after a crop layer that folds ``V`` views of each image into the
    batch (view-major per image, as ``CropAndMirror`` orders them). Each map
    is ``ReLU(sum_ch mean_hw(d score / d A_ch) * A_ch)`` in the layer's units;
    the score is that of the summed per-image scores, so each row gets the
    gradient of the image it came from. Arguments as in :func:`gradcam`; a
    ``score`` giving one value per image may combine several outputs of a
    view (the Voting ResNet sums each view's logit of the explained class).
    """
    visualiser, score, images = _visualiser(model, images, class_indices, layer_name,
                                            output_index, score, linear_output)
    cams = visualiser(score, images, penultimate_layer=layer_name,
                      seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
    return np.asarray(cams, dtype=np.float32)


def gradcam(model,
            images: np.ndarray,
            class_indices: Sequence[int] | np.ndarray | None,
            layer_name: str,
            output_index: int | None = None,
            score: Callable | None = None,
            linear_output: bool = True) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] at the input's resolution.

    ``class_indices`` gives, per image, the class whose score is explained
    (typically the predicted one). ``layer_name`` is the convolution whose
    feature maps are weighted (the task names it: ``enc4_conv`` for the CSA).
    A model with several outputs needs ``output_index``; ``score`` replaces
    the class score by any function of that output (tf-keras-vis' score
    protocol, one value per image). ``linear_output`` replaces the output
    layer's activation by the identity on a clone, so the model given is not
    changed. ``images`` are ``(N, H, W[, C])`` in [0, 1] (``uint8`` is scaled
    by 1/255; one channel is repeated for a three-channel model). Maps are
    resized bilinearly by tf-keras-vis and min-max normalised per image
    (:func:`normalize_maps`); a map with no positive evidence is all zeros.
    The layer must keep the images' batch: for a layer after a crop layer,
    see :func:`layer_cams`.
    """
    visualiser, score, images = _visualiser(model, images, class_indices, layer_name,
                                            output_index, score, linear_output)
    maps = visualiser(score, images, penultimate_layer=layer_name,
                      seek_penultimate_conv_layer=False, normalize_cam=False)
    return normalize_maps(maps)


def one_per_class(labels: Sequence[int] | np.ndarray, n_classes: int,
                  seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Index of one randomly chosen image of each class, in class order.

    Classes with no image are left out, so the result may be shorter than
    ``n_classes``. ``seed`` is an int or a :class:`numpy.random.Generator`.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c)) for c in range(int(n_classes))
              if np.any(labels == c)]
    return np.asarray(chosen, dtype=np.int64)


def heatmap_mass_in(mask: np.ndarray, heatmap: np.ndarray) -> float:
    """Fraction of a heatmap's total mass that lies inside a boolean mask.

    1.0 means all the attention is on the masked region (eyes, mouth); the
    mask's own area fraction is what a uniform map would give. An all-zero
    heatmap has no mass to place: 0.0.
    """
    mask = np.asarray(mask, dtype=bool)
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if mask.shape != heatmap.shape:
        raise ValueError("mask and heatmap must not differ in shape. "
                         f"Received: mask {mask.shape} and heatmap {heatmap.shape}")
    if np.any(heatmap < 0):
        raise ValueError("heatmap must lie in [0, 1] (a Grad-CAM map). Received: negative values")
    total = heatmap.sum()
    return float(heatmap[mask].sum() / total) if total > 0 else 0.0
