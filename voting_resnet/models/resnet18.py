"""ResNet-18 for 48x48 faces with an optional in-graph crop-and-mirror split (VRN §3.1).

Architecture (the paper's Figure 1 and Figure 3):

=========  ==========================================  ======  =======  ==============
stage      layers                                      width   stride   map at 48x48
=========  ==========================================  ======  =======  ==============
stem       Conv 3x3 (no bias) - BN - ReLU, no max-pool  64      1        48x48
stack1     2 basic blocks ("module 1")                  64      1        48x48
stack2     2 basic blocks ("module 2")                  128     2        24x24
stack3     2 basic blocks ("module 3")                  256     2        12x12
stack4     2 basic blocks ("module 4")                  512     2        6x6
head       global average pool - Dense(K) logits
=========  ==========================================  ======  =======  ==============

A basic block is Conv 3x3 - BN - ReLU - Conv 3x3 - BN, plus the identity or,
where the stride or the width changes, a 1x1 projection Conv - BN; then ReLU
(He et al.'s ResNet v1, as PyTorch's ``BasicBlock``). All convolutions are
bias-free.

With ``split_after = k`` in {1, 2, 3}, the output of module ``k`` (48, 24 or
12 pixels) goes through :class:`~voting_resnet.layers.CropAndMirror`: 10
views of side 40, 20 or 10 folded into the batch; the head classifies each
view and :class:`~voting_resnet.layers.Voting` combines them.
``split_after = 0`` is the baseline (one view).

Choices the paper leaves open, settled to match the PyTorch setting the paper
used, so that PyTorch weights port one to one:

- BatchNormalization ``momentum=0.9``, ``epsilon=1e-5`` (PyTorch's defaults;
  PyTorch's momentum 0.1 is Keras's 0.9), as :class:`csa_keras.layers.BatchNorm`,
  Keras's layer on TensorFlow's fused kernel.
- Stride-2 3x3 convolutions pad one pixel on every side (``ZeroPadding2D``
  then a ``valid`` convolution), as PyTorch's ``padding=1``; Keras's
  ``same`` padding would pad only bottom and right and shift the sampling grid.
- Convolution kernels start from He normal with fan-out (torchvision's ResNet
  initialisation); the Dense layer keeps Keras's Glorot uniform.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from csa_keras.layers import BN_EPSILON, BN_MOMENTUM, BatchNorm
from voting_resnet.layers.crop_and_mirror import CropAndMirror, crop_offsets
from voting_resnet.layers.voting import Regroup, Voting, check_mode

STACK_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STACK = (2, 2, 2, 2)
STACK_STRIDES = (1, 2, 2, 2)
SPLIT_POINTS = (0, 1, 2, 3)
"""Where the feature maps may be cut: after module 1, 2 or 3, or not at all (0, the plain ResNet-18)."""
VOTER_SPLIT_POINTS = tuple(s for s in SPLIT_POINTS if s)
"""The split points that make a voter: every one but 0."""
CROP_FRACTION = 5 / 6


def _conv_initializer():
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _check_split(split_after: int) -> int:
    if split_after not in SPLIT_POINTS:
        raise ValueError(f"split_after must be one of {SPLIT_POINTS} (0 = baseline), got {split_after!r}")
    return int(split_after)


def feature_size(input_size: int, split_after: int) -> int:
    """Side of the feature map after module ``split_after`` (the input side for 0)."""
    size = int(input_size)
    for stride in STACK_STRIDES[:_check_split(split_after)]:
        size = -(-size // stride)
    return size


def crop_size(input_size: int, split_after: int) -> int:
    """Side of the crops cut after module ``split_after``: 40, 20, 10 at 48x48 (0: no crop)."""
    if _check_split(split_after) == 0:
        return feature_size(input_size, 0)
    size = feature_size(input_size, split_after)
    return crop_offsets(size, size, CROP_FRACTION)[0]


def _conv_bn(x, filters, kernel_size, strides, name, bn_name, bn_momentum, bn_epsilon):
    padding = "same"
    if strides != 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(padding=kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=_conv_initializer(), name=name)(x)
    return BatchNorm(momentum=bn_momentum, epsilon=bn_epsilon, name=bn_name)(x)


def _basic_block(x, filters, strides, name, bn_momentum, bn_epsilon):
    """A ResNet v1 basic block named ``{name}_conv1`` ... ``{name}_out``."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_shortcut_conv", f"{name}_shortcut_bn",
                            bn_momentum, bn_epsilon)
    y = _conv_bn(x, filters, 3, strides, f"{name}_conv1", f"{name}_bn1", bn_momentum, bn_epsilon)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", f"{name}_bn2", bn_momentum, bn_epsilon)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_voting_resnet(num_classes: int = 7, input_shape=(48, 48, 3), split_after: int = 0,
                        voting: str = "soft", name: str | None = None,
                        bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON) -> keras.Model:
    """The Voting ResNet-18 (module docstring) as a functional Keras model.

    Args:
        num_classes: ``K``, the number of expression classes.
        input_shape: ``(H, W, C)``; the paper's 48x48x3 (C = 1 for grey input).
        split_after: module after which the map is cut into 10 views
            (1, 2 or 3), or 0 for the baseline ResNet-18.
        voting: ``"soft"`` (the paper's) or ``"hard"``; the mode of the
            ``vote`` output, saved with the model.
        name: model name; default ``voting_resnet18_split{k}``.
        bn_momentum, bn_epsilon: BatchNormalization settings (PyTorch's by default).

    Returns:
        A model with two named outputs (a dict): ``crop_logits`` ``(B, V, K)``
        (``V = 10``, or 1 for the baseline), which the loss trains (VRN §3.3,
        :class:`~voting_resnet.losses.CropCrossEntropy`), and ``vote``
        ``(B, K)``, the vote distribution used for prediction. 7 classes and
        3 channels give 11,172,423 trainable parameters for every split.
    """
    split_after = _check_split(split_after)
    voting = check_mode(voting)
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, STACK_WIDTHS[0], 3, 1, "stem_conv", "stem_bn", bn_momentum, bn_epsilon)
    x = layers.ReLU(name="stem_relu")(x)
    num_views = 1
    for stack, (width, blocks, stride) in enumerate(zip(STACK_WIDTHS, BLOCKS_PER_STACK, STACK_STRIDES), 1):
        for block in range(1, blocks + 1):
            x = _basic_block(x, width, stride if block == 1 else 1, f"stack{stack}_block{block}",
                             bn_momentum, bn_epsilon)
        if stack == split_after:
            crop = CropAndMirror(crop_fraction=CROP_FRACTION, mirror=True, name="crop_and_mirror")
            x = crop(x)
            num_views = crop.num_views
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(int(num_classes), dtype="float32", name="logits")(x)
    crop_logits = Regroup(num_views, dtype="float32", name="crop_logits")(x)
    vote = Voting(mode=voting, num_views=num_views, dtype="float32", name="vote")(crop_logits)
    return keras.Model(inputs, {"crop_logits": crop_logits, "vote": vote},
                       name=name or f"voting_resnet18_split{split_after}")


def crop_views(model: keras.Model, images) -> np.ndarray:
    """What a trained Voting ResNet's crop layer cuts from ``images``: ``(N * V, h, w, C)``.

    The feature maps after the split module, in the layer's output order
    (five crops, then the same five of the mirrored map, per image), for
    looking at what each view of a voter sees. A model without a
    :class:`CropAndMirror` layer (the baseline) cuts no views: one-line
    ``ValueError``.
    """
    layer = next((layer for layer in model.layers if isinstance(layer, CropAndMirror)), None)
    if layer is None:
        raise ValueError(f"model must hold a CropAndMirror layer (split_after 1, 2 or 3). "
                         f"Received: model={model.name!r} without one")
    views = keras.Model(model.input, layer.output)(np.asarray(images), training=False)
    return keras.ops.convert_to_numpy(views)
