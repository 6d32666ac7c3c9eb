"""Grad-CAM heatmaps through tf-keras-vis (CSA paper §4.3, Fig. 7; SPEC §3 "Report").

The paper shows Grad-CAM of the classifier on sample faces to argue that it
looks at the eyes, brows and mouth. :func:`gradcam` computes the maps with
``tf_keras_vis.gradcam.Gradcam`` on the output layer made linear (scores are
logits, not softmax probabilities, as tf-keras-vis recommends);
:func:`one_per_class` picks the faces and :func:`heatmap_mass_in` measures
how much of a map falls on a region, so that claim can be checked.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from csa_keras.models.csa import LAST_CONV_LAYER


def _single_output(model, output_index: int | None):
    import keras

    if output_index is None:
        if len(model.outputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs: "
                             "choose one with output_index")
        return model
    if not -len(model.outputs) <= output_index < len(model.outputs):
        raise ValueError(f"output_index {output_index} is out of range for "
                         f"{len(model.outputs)} outputs of model {model.name!r}")
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
    import keras

    if all(layer.compute_dtype == "float32" for layer in model.layers):
        return model
    twin = model.__class__.from_config(_float32_policies(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def gradcam(model,
            images: np.ndarray,
            class_indices: Sequence[int] | np.ndarray | None,
            layer_name: str = LAST_CONV_LAYER,
            output_index: int | None = None,
            score: Callable | None = None,
            linear_output: bool = True) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] at the input's resolution.

    ``class_indices`` gives, per image, the class whose score is explained
    (typically the predicted one). ``layer_name`` is the convolution whose
    feature maps are weighted (``enc4_conv`` for the CSA). A model with
    several outputs (the voting ResNet's crop logits and vote) needs
    ``output_index``; ``score`` replaces the class score by any function of
    that output (tf-keras-vis' score protocol, one value per image).
    ``linear_output`` replaces the output layer's activation by the identity
    on a clone, so the model given is not changed. Each map is min-max
    normalised per image by tf-keras-vis; a map with no positive evidence is
    all zeros.
    """
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (N, H, W, C), got shape {images.shape}")
    model = float32_copy(_single_output(model, output_index))
    try:
        model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer named {layer_name!r} "
                         "for Grad-CAM") from None
    if score is None:
        if class_indices is None:
            raise ValueError("give class_indices (one class per image) or a score function")
        classes = np.asarray(class_indices).astype(np.int64).ravel()
        if len(classes) != len(images):
            raise ValueError(f"{len(classes)} class indices for {len(images)} images")
        n_out = int(model.outputs[0].shape[-1])
        if classes.min() < 0 or classes.max() >= n_out:
            raise ValueError(f"class indices must lie in 0..{n_out - 1}")
        score = CategoricalScore(classes.tolist())
    visualiser = Gradcam(model, model_modifier=ReplaceToLinear() if linear_output else None,
                         clone=True)
    maps = visualiser(score, images, penultimate_layer=layer_name,
                      seek_penultimate_conv_layer=False)
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)
    return np.clip(maps, 0.0, 1.0)


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
        raise ValueError(f"mask {mask.shape} and heatmap {heatmap.shape} differ in shape")
    if np.any(heatmap < 0):
        raise ValueError("heatmap has negative values: pass a Grad-CAM map in [0, 1]")
    total = heatmap.sum()
    return float(heatmap[mask].sum() / total) if total > 0 else 0.0
