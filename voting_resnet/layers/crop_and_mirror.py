"""The in-graph crop-and-mirror layer of the Voting ResNet (VRN §3.1, Algorithm 1).

Any feature map ``(B, H, W, C)`` is cut into five overlapping crops of side
``floor(crop_fraction * H) x floor(crop_fraction * W)`` (top-left, top-right,
bottom-left, bottom-right, centre) and, with ``mirror=True``, the same five
crops of the horizontally mirrored map. The views are folded into the batch,
sample-major as in Algorithm 1 (image 0's views, then image 1's, ...), so the
layers after it see ``B * num_views`` independent images and the voting
layers can regroup them with a plain reshape.
"""
from __future__ import annotations

from fractions import Fraction

import keras
import numpy as np
from keras import ops

#: The five crop positions in Algorithm 1's order, also the order of the mirrored five.
CROP_POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")


def _as_fraction(crop_fraction: float) -> Fraction:
    """An exact rational for ``crop_fraction`` so that ``5/6 * 48`` is 40, not 39.99..."""
    return Fraction(crop_fraction).limit_denominator(1000)


def crop_offsets(height: int, width: int, crop_fraction: float = 5 / 6) -> tuple[int, int, list[tuple[int, int]]]:
    """Crop size and the (row, column) corner of each of the five crops.

    Returns ``(h, w, offsets)`` with ``h = floor(crop_fraction * height)``,
    ``w = floor(crop_fraction * width)`` and the offsets of the top-left,
    top-right, bottom-left, bottom-right and centre crops; the centre crop
    starts at ``((height - h) // 2, (width - w) // 2)``.
    """
    fraction = _as_fraction(crop_fraction)
    h = int(fraction * height)
    w = int(fraction * width)
    if h < 1 or w < 1:
        raise ValueError(
            f"crop_fraction={crop_fraction} leaves an empty crop of a {height}x{width} feature map")
    dh, dw = height - h, width - w
    offsets = [(0, 0), (0, dw), (dh, 0), (dh, dw), (dh // 2, dw // 2)]
    return h, w, offsets


def view_indices(height: int, width: int, crop_fraction: float = 5 / 6,
                 mirror: bool = True) -> np.ndarray:
    """Flat ``row * width + column`` index of every pixel of every view, view-major.

    The five crops of :func:`crop_offsets`, then (``mirror``) the same five of
    the horizontally flipped map, whose column ``c`` is the map's
    ``width - 1 - c``. Taking these positions from a ``(B, H * W, C)`` map
    gives ``(B, V * h * w, C)``, which reshapes to the sample-major
    ``(B * V, h, w, C)`` views.
    """
    h, w, offsets = crop_offsets(height, width, crop_fraction)
    views = []
    for flipped in (False, True) if mirror else (False,):
        for top, left in offsets:
            rows = np.arange(top, top + h)[:, None]
            cols = np.arange(left, left + w)[None, :]
            if flipped:
                cols = width - 1 - cols
            views.append((rows * width + cols).ravel())
    return np.concatenate(views).astype("int32")


@keras.saving.register_keras_serializable(package="voting_resnet")
class CropAndMirror(keras.layers.Layer):
    """Five overlapping crops and their mirrors folded into the batch (VRN Algorithm 1).

    ``(B, H, W, C) -> (B * num_views, h, w, C)`` with ``h = floor(crop_fraction * H)``
    and ``w = floor(crop_fraction * W)``; ``num_views`` is 10 (5 crops of the map,
    then the same 5 of the map flipped along its width) or 5 with
    ``mirror=False``. The output of image ``b`` occupies rows
    ``b * num_views ... (b + 1) * num_views - 1``, in the order of
    :data:`CROP_POSITIONS`, then the mirrored five in the same order.

    All views come from one gather of precomputed pixel positions
    (:func:`view_indices`; H and W must be known when the layer is built), so
    gradients flow to every input pixel once per crop covering it. On CPU the
    gather and its gradient ran 3-4x faster than ten slices, a flip and a
    stack (``benchmarks/crop_layer.py``). The layer
    makes no assumption about the network around it: it can follow any
    convolutional stage of any Keras CNN.

    Args:
        crop_fraction: side of a crop as a fraction of the map's side; the
            paper's 5/6 (VRN §3.1).
        mirror: also take the five crops of the horizontally mirrored map.
    """

    def __init__(self, crop_fraction: float = 5 / 6, mirror: bool = True, **kwargs):
        super().__init__(**kwargs)
        crop_fraction = float(crop_fraction)
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1]. Received: crop_fraction={crop_fraction!r}")
        self.crop_fraction = crop_fraction
        self.mirror = bool(mirror)

    @property
    def num_views(self) -> int:
        """Views per image: 10 with mirroring (the paper), 5 without."""
        return 2 * len(CROP_POSITIONS) if self.mirror else len(CROP_POSITIONS)

    def _geometry(self, input_shape) -> tuple[int, int, list[tuple[int, int]]]:
        if len(input_shape) != 4:
            raise ValueError(
                f"CropAndMirror '{self.name}' expects a (batch, height, width, channels) "
                f"feature map. Received: input_shape={tuple(input_shape)}")
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                f"CropAndMirror '{self.name}' needs a static height and width. Received: input_shape="
                f"{tuple(input_shape)}")
        return crop_offsets(int(height), int(width), self.crop_fraction)

    def build(self, input_shape):
        self._geometry(input_shape)
        self.built = True

    def call(self, inputs):
        h, w, _ = self._geometry(inputs.shape)
        height, width = int(inputs.shape[1]), int(inputs.shape[2])
        channels = inputs.shape[-1] if inputs.shape[-1] is not None else ops.shape(inputs)[-1]
        index = view_indices(height, width, self.crop_fraction, self.mirror)
        pixels = ops.reshape(inputs, (-1, height * width, channels))
        return ops.reshape(ops.take(pixels, index, axis=1), (-1, h, w, channels))

    def compute_output_shape(self, input_shape):
        h, w, _ = self._geometry(input_shape)
        batch = input_shape[0]
        return (None if batch is None else batch * self.num_views, h, w, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"crop_fraction": self.crop_fraction, "mirror": self.mirror})
        return config
