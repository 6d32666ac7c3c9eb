"""Grad-CAM for the Voting ResNet, shown on the whole image (VRN §3.1; SPEC §3 "Report").

The Voting ResNet classifies ten views of each face: after module ``k`` the
feature map ``H_k x W_k`` (48, 24 or 12 at 48x48) is cut by
:class:`~voting_resnet.layers.CropAndMirror` into five crops of side
``floor(5/6 * H_k)`` and the same five of the mirrored map, folded into the
batch (``B -> B * V``). tf-keras-vis' ``Gradcam`` assumes the batch is the
same at the explained layer and at the output, so Grad-CAM is computed here
directly with :class:`tf.GradientTape` (Selvaraju et al., 2017):

1. :func:`layer_cams`: for image ``i`` and class ``c_i``, every view ``v``
   scores its own crop logit ``crop_logits[i, v, c_i]``; the weights of the
   explained layer's channels are the spatial mean of ``d score / d A``, and
   the view's map is ``ReLU(sum_ch weight_ch * A_ch)``. The views are
   independent after the split (inference-mode BatchNorm), so one gradient of
   the summed scores gives every view's own gradient.
2. :func:`place_views`: each view's map is resized (``cv2.resize``,
   bilinear) to the extent its crop covers in input pixels, flipped back for
   a mirrored view and put at the mirrored position (a crop at column ``x0``
   of the flipped map covers columns ``W_k - x0 - w .. W_k - x0`` of the
   original), then the placed maps are averaged over the views that cover
   each pixel (:func:`view_boxes` gives the rectangles).
3. :func:`voter_gradcam` min-max normalises each image's map to [0, 1],
   as tf-keras-vis does for the CSA (``csa_keras.evaluation.gradcam``).

Which layer: per-view placement needs a layer after the split (default
:data:`DEFAULT_LAYER`, the last residual block's output: 5x5 per view for
every split at 48x48, as the 40-, 20- and 10-pixel crops go through the
remaining stride-2 stages; 6x6 for the baseline). A layer before the crop
(``stack1_block2_out`` with ``split_after=2``) still has one map per image;
it is explained by plain Grad-CAM of the sum of the image's ten view scores,
resized to the whole image. The baseline (``split_after=0``, one view) is
plain Grad-CAM on the whole image either way.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from voting_resnet.layers.crop_and_mirror import CropAndMirror, crop_offsets
from voting_resnet.models.resnet18 import CROP_FRACTION

#: The last residual block's output: the standard Grad-CAM layer of a ResNet.
DEFAULT_LAYER = "stack4_block2_out"
#: The model output holding the per-view logits ``(B, V, K)``.
CROP_LOGITS = "crop_logits"
_EPSILON = 1e-7


def _pair(size, what: str) -> tuple[int, int]:
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(int(s) for s in pair) < 1:
        raise ValueError(f"{what} must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def view_boxes(input_size, map_size, num_views: int,
               crop_fraction: float = CROP_FRACTION) -> list[tuple[int, int, int, int, bool]]:
    """Where each view lies in the input image: ``(top, left, bottom, right, mirrored)``.

    ``map_size`` is the side (or ``(H_k, W_k)``) of the feature map the crops
    are cut from; ``num_views`` is 1 (the baseline: the whole image), 5 (crops
    without mirrors) or 10 (the paper's: five crops, then the same five of
    the mirrored map, in :class:`~voting_resnet.layers.CropAndMirror`'s order).
    Boxes are half-open pixel ranges of the input; a mirrored view's box is
    already reflected back to the original orientation. Map coordinates are
    scaled by ``input / map`` (2 for a 24-pixel map of a 48-pixel input) and
    rounded when the ratio is not a whole number.
    """
    height, width = _pair(input_size, "input_size")
    if num_views == 1:
        return [(0, 0, height, width, False)]
    if num_views not in (5, 10):
        raise ValueError(f"num_views must be 1 (baseline), 5 or 10 (crops and mirrors), got {num_views}")
    map_h, map_w = _pair(map_size, "map_size")
    h, w, offsets = crop_offsets(map_h, map_w, crop_fraction)
    scale_y, scale_x = height / map_h, width / map_w
    boxes = []
    for mirrored in (False, True)[:num_views // 5]:
        for top, left in offsets:
            if mirrored:
                left = map_w - left - w
            boxes.append((round(top * scale_y), round(left * scale_x),
                          round((top + h) * scale_y), round((left + w) * scale_x), mirrored))
    return boxes


def place_views(view_maps: np.ndarray, input_size, map_size,
                crop_fraction: float = CROP_FRACTION, average: bool = True) -> np.ndarray:
    """Put per-view maps ``(V, h, w)`` back where their crops came from: ``(H, W)``.

    Each map is resized with ``cv2.resize`` (bilinear) to its box from
    :func:`view_boxes`, flipped left-right if the view is mirrored, and added
    in. With ``average`` the sum is divided, pixel by pixel, by the number of
    views covering it (pixels no view covers stay 0); without it the sum is
    returned, so maps of ones give the coverage count. ``V = 1`` stretches the
    single map over the whole image (plain Grad-CAM).
    """
    import cv2

    view_maps = np.asarray(view_maps, dtype=np.float32)
    if view_maps.ndim != 3 or min(view_maps.shape) < 1:
        raise ValueError(f"view_maps must be (views, height, width), got shape {view_maps.shape}")
    height, width = _pair(input_size, "input_size")
    total = np.zeros((height, width), np.float32)
    coverage = np.zeros((height, width), np.float32)
    for view_map, (top, left, bottom, right, mirrored) in zip(
            view_maps, view_boxes((height, width), map_size, len(view_maps), crop_fraction)):
        placed = cv2.resize(view_map, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
        total[top:bottom, left:right] += placed[:, ::-1] if mirrored else placed
        coverage[top:bottom, left:right] += 1.0
    if not average:
        return total
    return np.divide(total, coverage, out=np.zeros_like(total), where=coverage > 0)


def _split_geometry(model) -> tuple[int, tuple[int, int] | None, float]:
    """``(views, (H_k, W_k) or None, crop_fraction)`` of the model's crop layer (1, None for the baseline)."""
    crops = [layer for layer in model.layers if isinstance(layer, CropAndMirror)]
    if not crops:
        return 1, None, CROP_FRACTION
    if len(crops) > 1:
        raise ValueError(f"model {model.name!r} has {len(crops)} CropAndMirror layers; "
                         "Grad-CAM placement supports one")
    crop = crops[0]
    shape = crop.input.shape
    return crop.num_views, (int(shape[1]), int(shape[2])), crop.crop_fraction


def _prepare_images(model, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError("images must be a non-empty batch (N, H, W) or (N, H, W, C), "
                         f"got shape {images.shape}")
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(images.shape[1:3]) != tuple(expected[:2]):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} but model {model.name!r} "
                         f"takes {expected[0]}x{expected[1]}")
    if images.shape[-1] == 1 and expected[2] == 3:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[-1] != expected[2]:
        raise ValueError(f"images have {images.shape[-1]} channels but model {model.name!r} "
                         f"takes {expected[2]}")
    return images


def layer_cams(model, images, class_indices: Sequence[int] | np.ndarray,
               layer_name: str | None = None, batch_size: int = 16) -> tuple[np.ndarray, bool]:
    """Raw Grad-CAM maps of one layer, before placement and normalisation.

    Returns ``(cams, per_view)``: with a layer after the split, ``cams`` is
    ``(N, V, h, w)`` (each view's own map, ``per_view=True``); with a layer
    before it, or the baseline, ``(N, 1, h, w)`` for the summed view scores
    (``per_view=False``). Maps are ``ReLU(sum_ch mean(d score / d A_ch) * A_ch)``
    in the layer's units, computed ``batch_size`` images at a time.

    ``images`` are ``(N, H, W[, C])`` in [0, 1] (``uint8`` is scaled by 1/255;
    one channel is repeated for a three-channel model, as training does).
    ``class_indices`` gives one class per image (usually the predicted one).
    """
    import keras
    import tensorflow as tf

    layer_name = DEFAULT_LAYER if layer_name is None else layer_name
    images = _prepare_images(model, images)
    try:
        layer = model.get_layer(layer_name)
        logits_layer = model.get_layer(CROP_LOGITS)
    except ValueError as error:
        raise ValueError(f"Grad-CAM on model {model.name!r}: {error}") from None
    if len(layer.output.shape) != 4:
        raise ValueError(f"layer {layer_name!r} outputs shape {tuple(layer.output.shape)}: Grad-CAM "
                         "needs a convolutional (batch, height, width, channels) map")
    n_classes = int(logits_layer.output.shape[-1])
    classes = np.asarray(class_indices).astype(np.int64).ravel()
    if len(classes) != len(images):
        raise ValueError(f"{len(classes)} class indices for {len(images)} images")
    if classes.min() < 0 or classes.max() >= n_classes:
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}, "
                         f"got {classes.min()}..{classes.max()}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    probe = keras.Model(model.inputs, [layer.output, logits_layer.output], name=f"{model.name}_gradcam")
    chunks = []
    per_view = False
    for start in range(0, len(images), int(batch_size)):
        batch = tf.constant(images[start:start + int(batch_size)])
        chosen = tf.constant(classes[start:start + int(batch_size)])
        with tf.GradientTape() as tape:
            features, crop_logits = probe(batch, training=False)
            scores = tf.gather(tf.cast(crop_logits, tf.float32), chosen, axis=2, batch_dims=1)
            total = tf.reduce_sum(scores)
        grads = tf.cast(tape.gradient(total, features), tf.float32)
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
        n_batch, views = int(batch.shape[0]), int(crop_logits.shape[1])
        per_view = views > 1 and cams.shape[0] == n_batch * views
        chunks.append(cams.reshape(n_batch, -1, *cams.shape[1:]))
    return np.concatenate(chunks, axis=0), per_view


def voter_gradcam(model, images, class_indices: Sequence[int] | np.ndarray,
                  layer_name: str | None = None, batch_size: int = 16) -> np.ndarray:
    """Grad-CAM of a Voting ResNet on the whole image: ``(N, H, W)`` in [0, 1].

    ``model`` is :func:`~voting_resnet.models.build_voting_resnet`'s (any
    functional model with a ``crop_logits`` output ``(B, V, K)`` and at most
    one :class:`~voting_resnet.layers.CropAndMirror` works). ``images`` and
    ``class_indices`` as in :func:`layer_cams`; ``layer_name`` defaults to
    :data:`DEFAULT_LAYER`.

    For a layer after the split, each view's map is put back where its crop
    came from (mirrored views flipped back) and the maps are averaged over the
    views covering each pixel (:func:`place_views`); for a layer before the
    split, or the baseline, the single map is resized to the image. Each map
    is then min-max normalised per image (``(x - min) / (max - min + 1e-7)``,
    tf-keras-vis' normalisation); a map with no positive evidence is all zeros.
    """
    height, width = (int(s) for s in model.inputs[0].shape[1:3])
    cams, per_view = layer_cams(model, images, class_indices, layer_name, batch_size)
    views, map_size, crop_fraction = _split_geometry(model)
    if per_view and cams.shape[1] != views:
        raise ValueError(f"layer {layer_name!r} gives {cams.shape[1]} maps per image but the crop "
                         f"layer makes {views} views")
    maps = np.stack([place_views(image_cams, (height, width), map_size, crop_fraction)
                     for image_cams in cams])
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return np.clip((maps - low) / (high - low + _EPSILON), 0.0, 1.0).astype(np.float32)
