"""Grad-CAM of the Voting ResNet, shown on the whole image (VRN §3.1).

The Voting ResNet classifies ten views of each face: after module ``k`` the
feature map ``H_k x W_k`` (48, 24 or 12 at 48x48) is cut by
:class:`~voting_resnet.layers.CropAndMirror` into five crops of side
``floor(5/6 * H_k)`` and the same five of the mirrored map, folded into the
batch (``B -> B * V``). The Grad-CAM maps themselves come from the project's
one engine, :func:`csa_keras.evaluation.gradcam.layer_cams` (tf-keras-vis);
this module adds the voter's crop geometry on top:

1. :func:`layer_cams`: for image ``i`` and class ``c_i``, the explained
   score is the sum over its views of each view's crop logit
   ``crop_logits[i, v, c_i]``. The views are independent after the split
   (inference-mode BatchNorm), so the gradient of that sum gives every
   view's map its own gradient: ``(N, V, h, w)`` maps, one per view.
2. :func:`place_views`: each view's map is resized (``cv2.resize``,
   bilinear) to the extent its crop covers in input pixels, flipped back for
   a mirrored view and put at the mirrored position (a crop at column ``x0``
   of the flipped map covers columns ``W_k - x0 - w .. W_k - x0`` of the
   original), then the placed maps are averaged over the views that cover
   each pixel (:func:`view_boxes` gives the rectangles).
3. :func:`voter_gradcam` min-max normalises each image's map to [0, 1]
   (:func:`csa_keras.evaluation.gradcam.normalize_maps`, tf-keras-vis'
   normalisation, as for the CSA).

Which layer: per-view placement needs a layer after the split (default
:data:`DEFAULT_LAYER`, the last residual block's output: 5x5 per view for
every split at 48x48, as the 40-, 20- and 10-pixel crops go through the
remaining stride-2 stages; 6x6 for the baseline). A layer before the crop
(``stack1_block2_out`` with ``split_after=2``) still has one map per image;
it is explained by plain Grad-CAM of the sum of the image's ten view scores,
resized to the whole image. The baseline (``split_after=0``, one view) is
plain Grad-CAM on the whole image either way. A mixed-precision model is
explained on its float32 twin (:func:`csa_keras.evaluation.gradcam.float32_copy`).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import keras
import numpy as np

from csa_keras.evaluation.gradcam import float32_copy, normalize_maps
from csa_keras.evaluation.gradcam import layer_cams as core_layer_cams
from voting_resnet.layers.crop_and_mirror import CropAndMirror, crop_offsets
from voting_resnet.models.resnet18 import CROP_FRACTION

#: The last residual block's output: the standard Grad-CAM layer of a ResNet.
DEFAULT_LAYER = "stack4_block2_out"
#: The model output holding the per-view logits ``(B, V, K)``.
CROP_LOGITS = "crop_logits"


def _pair(size, what: str) -> tuple[int, int]:
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(int(s) for s in pair) < 1:
        raise ValueError(f"{what} must be a positive int or (height, width). Received: {what}={size!r}")
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
        raise ValueError("num_views must be 1 (baseline), 5 or 10 (crops and mirrors). "
                         f"Received: num_views={num_views}")
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
    view_maps = np.asarray(view_maps, dtype=np.float32)
    if view_maps.ndim != 3 or min(view_maps.shape) < 1:
        raise ValueError("view_maps must be (views, height, width). "
                         f"Received: view_maps with shape {view_maps.shape}")
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
        raise ValueError("model must have at most one CropAndMirror layer for Grad-CAM placement. "
                         f"Received: model {model.name!r} with {len(crops)}")
    crop = crops[0]
    shape = crop.input.shape
    return crop.num_views, (int(shape[1]), int(shape[2])), crop.crop_fraction


def layer_cams(model, images, class_indices: Sequence[int] | np.ndarray,
               layer_name: str | None = None, batch_size: int = 16) -> tuple[np.ndarray, bool]:
    """Raw Grad-CAM maps of one layer, before placement and normalisation.

    Returns ``(cams, per_view)``: with a layer after the split, ``cams`` is
    ``(N, V, h, w)`` (each view's own map, ``per_view=True``); with a layer
    before it, or the baseline, ``(N, 1, h, w)`` for the summed view scores
    (``per_view=False``). The maps come from the core engine
    (:func:`csa_keras.evaluation.gradcam.layer_cams`, on the ``crop_logits``
    output), ``batch_size`` images at a time.

    ``images`` are ``(N, H, W[, C])`` in [0, 1] (``uint8`` is scaled by 1/255;
    one channel is repeated for a three-channel model, as training does).
    ``class_indices`` gives one class per image (usually the predicted one).
    """
    layer_name = DEFAULT_LAYER if layer_name is None else layer_name
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
    model = float32_copy(model)
    try:
        crop_logits = model.get_layer(CROP_LOGITS).output
    except ValueError:
        raise ValueError(f"model must have a {CROP_LOGITS!r} layer giving the per-view logits. "
                         f"Received: model {model.name!r}") from None
    explained = keras.Model(model.inputs, crop_logits, name=f"{model.name}_{CROP_LOGITS}")
    views, n_classes = int(crop_logits.shape[1]), int(crop_logits.shape[-1])
    images = np.asarray(images)
    classes = np.asarray(class_indices).astype(np.int64).ravel()
    n_images = len(images)
    if len(classes) != n_images:
        raise ValueError("class_indices must hold one class per image. "
                         f"Received: {len(classes)} class indices for {n_images} images")
    if n_images and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"class_indices must lie in 0..{n_classes - 1}. "
                         f"Received: class_indices in {classes.min()}..{classes.max()}")

    chunks = []
    for start in range(0, max(n_images, 1), int(batch_size)):
        chosen = classes[start:start + int(batch_size)]
        cams = core_layer_cams(explained, images[start:start + int(batch_size)], None, layer_name,
                               score=_views_score(chosen, n_classes), linear_output=False)
        chunks.append(cams.reshape(len(chosen), -1, *cams.shape[1:]))
    cams = np.concatenate(chunks, axis=0)
    return cams, views > 1 and cams.shape[1] == views


def _views_score(classes: np.ndarray, n_classes: int):
    """tf-keras-vis score: per image, the sum over its views of each view's logit of its class."""
    one_hot = np.eye(n_classes, dtype=np.float32)[classes][:, None, :]
    return lambda crop_logits: keras.ops.sum(crop_logits * one_hot, axis=(1, 2))


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
    layer_name = DEFAULT_LAYER if layer_name is None else layer_name
    height, width = (int(s) for s in model.inputs[0].shape[1:3])
    cams, per_view = layer_cams(model, images, class_indices, layer_name, batch_size)
    views, map_size, crop_fraction = _split_geometry(model)
    if per_view and cams.shape[1] != views:
        raise ValueError(f"layer_name must give one map per view ({views} views per image). "
                         f"Received: layer_name={layer_name!r} with {cams.shape[1]} maps per image")
    maps = np.stack([place_views(image_cams, (height, width), map_size, crop_fraction)
                     for image_cams in cams])
    return normalize_maps(maps)
