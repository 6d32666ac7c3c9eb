"""The convolutional sparse autoencoder (CSA) and its classifier (CSA paper §3.2-3.3).

Encoder: four blocks ``Conv2D 3x3 same -> BatchNormalization -> ReLU ->
MaxPooling2D 2x2``, the pooled maps carrying an L1 activity penalty (the
paper: "sparsity is added in the max pooling layer", coefficient 1e-5).
Decoder: three blocks ``Conv2D 3x3 -> BatchNormalization -> ReLU ->
UpSampling2D 2x2`` and a ``Conv2D`` to the input channels with a sigmoid.
Classifier (§3.3): the pretrained encoder, ``Flatten -> Dense(128, relu) ->
Dense(K, softmax)``, everything fine-tuned.

Closing the shapes (an open point of the paper)
----------------------------------------------
Four 2x2 pools take 48 to 3, but three 2x2 upsamplings only take 3 to 24, and
the paper's figure is not available. Two closures keep 4 encoder blocks, 3
decoder blocks and a 48x48 reconstruction; ``closure`` selects one:

``"code6"`` (default)
    Blocks 1-3 pool (48 -> 24 -> 12 -> 6); block 4 has no pooling and its
    sparsity penalty sits on its ReLU output, the 6x6x256 code. The decoder's
    three upsampling blocks (filters 128, 64, 32) take 6 -> 12 -> 24 -> 48.
    This is the shape-consistent reading of "four encoder and three decoder
    blocks" and the layer stack of the PyTorch reference used for throughput
    comparisons.
``"pool4"``
    All four blocks pool (48 -> 3; code 3x3x256, a penalty on each of the four
    pooled maps); the decoder blocks take 3 -> 6 -> 12 -> 24 and one extra
    ``UpSampling2D`` (``dec_out_up``) takes 24 -> 48 before the reconstruction
    conv. This is the literal reading of "max pooling after each block".

Both have exactly four sparsity penalties, one per encoder block (``*``):

=====  ==================================  ==================================
block  ``code6`` (default)                 ``pool4``
=====  ==================================  ==================================
enc1   conv 32, BN, ReLU, pool* 48 -> 24   same
enc2   conv 64, BN, ReLU, pool* 24 -> 12   same
enc3   conv 128, BN, ReLU, pool* 12 -> 6   same
enc4   conv 256, BN, ReLU* (code 6x6)      conv 256, BN, ReLU, pool* 6 -> 3
dec1   conv 128, BN, ReLU, up 6 -> 12      conv 128, BN, ReLU, up 3 -> 6
dec2   conv 64, BN, ReLU, up 12 -> 24      conv 64, BN, ReLU, up 6 -> 12
dec3   conv 32, BN, ReLU, up 24 -> 48      conv 32, BN, ReLU, up 12 -> 24
out    conv C, sigmoid (48x48xC)           up 24 -> 48, conv C, sigmoid
=====  ==================================  ==================================

:func:`architecture` returns this table as :class:`BlockSpec` tuples for any
widths; :data:`DEFAULT_ARCHITECTURE` holds it for the default ones.

The L1 activity penalty in Keras 3
----------------------------------
``keras.layers.Layer.__call__`` (``keras/src/layers/layer.py``) adds, for a
layer with an ``activity_regularizer`` and each output of rank > 0, the loss
``regularizer(output) / batch_size`` (``ops.divide_no_nan`` by
``shape(output)[0]``). With ``keras.regularizers.L1(1e-5)`` each penalised
layer therefore contributes ``1e-5 * sum(|output|) / B``: the per-image mean
of the L1 norm, so the penalty's weight against the reconstruction MSE does
not change with the batch size. tf.keras 2 divided the same way; Keras 3
releases before the fix of keras-team/keras#22018 (PR #22021, January 2026)
added the undivided sum, a penalty 32 times stronger at batch 32, so the
division depends on the installed Keras (``tests/csa/test_csa_model.py`` checks
it).
``model.losses`` holds the four terms after a call; ``fit`` adds them to the
compiled loss. The classifier shares the encoder's layers, so the penalty
stays on during fine-tuning, as "sparsity in the max pooling layer" of one
network implies.

The penalised layers (the pools; block 4's ReLU under ``code6``) and the two
outputs (``reconstruction``, ``predictions``) compute in ``float32`` even under
a ``mixed_float16`` policy: the L1 sum runs over hundreds of thousands of
activations per batch and would overflow float16 (max 65504), and float32
outputs keep the losses exact. Under a float32 policy this changes nothing.

BatchNormalization
------------------
``momentum=0.9, epsilon=1e-5``: PyTorch's defaults (its momentum 0.1 is
Keras's 0.9), as in the reference the throughput is compared with. Keras's
default momentum of 0.99 lets the moving statistics that inference uses lag
far behind the batch statistics for the first few hundred steps; on a small
face set (a CK+ training split is ~25 batches an epoch) the classifier then
scores near chance in inference while training accuracy reaches 100%.
The layer is :class:`csa_keras.layers.BatchNorm`, Keras's BatchNormalization
computed by TensorFlow's fused kernel.

Layer names (for ``get_layer``, Grad-CAM and tests): ``enc{i}_conv``,
``enc{i}_bn``, ``enc{i}_relu``, ``enc{i}_pool`` (i = 1..4, no ``enc4_pool``
under ``code6``), ``dec{i}_conv``, ``dec{i}_bn``, ``dec{i}_relu``,
``dec{i}_up`` (i = 1..3), ``dec_out_up`` (``pool4`` only), ``reconstruction``;
classifier: ``flatten``, ``dense``, ``predictions``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from csa_keras.layers import BatchNorm
from csa_keras.utils.messages import one_of

CLOSURES = ("code6", "pool4")
DEFAULT_FILTERS = (32, 64, 128, 256)
DEFAULT_SPARSITY = 1e-5
DEFAULT_INPUT_SHAPE = (48, 48, 1)
N_ENCODER_BLOCKS = 4
LAST_CONV_LAYER = "enc4_conv"
"""The encoder's last convolution: the Grad-CAM layer of the paper's Fig. 7."""
CLASSIFIER_OUTPUT = "predictions"
"""The name of the classifier's softmax layer, its one output."""
CLASSIFIER_LAYERS = (*(f"enc{i}_conv" for i in range(1, N_ENCODER_BLOCKS + 1)), "flatten", "dense",
                     CLASSIFIER_OUTPUT)
"""The layers :func:`build_classifier` names: by them the CSA task knows its classifier."""

PENALTY_DTYPE = "float32"


SIDE_MULTIPLE = {"code6": 8, "pool4": 16}
"""What an input side must be divisible by, per closure, so that the poolings and
upsamplings return to it (three halvings for ``code6``, four for ``pool4``)."""


def _check_closure(closure: str) -> None:
    if closure not in CLOSURES:
        raise ValueError(one_of("closure", CLOSURES, closure))


def _check_filters(filters: Sequence[int]) -> tuple[int, ...]:
    try:
        widths = tuple(int(f) for f in filters)
    except (TypeError, ValueError):
        raise ValueError(f"filters must be {N_ENCODER_BLOCKS} positive integers. "
                         f"Received: filters={filters!r}") from None
    if len(widths) != N_ENCODER_BLOCKS or min(widths) < 1:
        raise ValueError(f"filters must be {N_ENCODER_BLOCKS} positive integers "
                         f"(one per encoder block). Received: filters={filters!r}")
    return widths


def _check_input_shape(input_shape: Sequence[int], closure: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels). Received: input_shape={input_shape!r}")
    factor = 2 ** (N_ENCODER_BLOCKS if closure == "pool4" else N_ENCODER_BLOCKS - 1)
    if shape[0] % factor or shape[1] % factor:
        raise ValueError(f"input height and width must be multiples of {factor} for the "
                         f"{closure!r} closure. Received: input_shape={shape}")
    return shape


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block of the architecture table.

    ``resample`` is ``"pool"`` (MaxPooling2D 2x2), ``"up"`` (UpSampling2D 2x2)
    or ``None``; ``penalty`` names the layer carrying the L1 activity penalty
    (encoder blocks only).
    """

    name: str
    filters: int
    resample: str | None
    penalty: str | None = None


def architecture(filters: Sequence[int] = DEFAULT_FILTERS,
                 closure: str = "code6") -> tuple[tuple[BlockSpec, ...], tuple[BlockSpec, ...]]:
    """The (encoder, decoder) block tables of one closure (see the module docstring).

    >>> enc, dec = architecture()
    >>> [(b.name, b.filters, b.resample, b.penalty) for b in enc]  # doctest: +NORMALIZE_WHITESPACE
    [('enc1', 32, 'pool', 'enc1_pool'), ('enc2', 64, 'pool', 'enc2_pool'),
     ('enc3', 128, 'pool', 'enc3_pool'), ('enc4', 256, None, 'enc4_relu')]
    >>> [(b.name, b.filters, b.resample) for b in dec]
    [('dec1', 128, 'up'), ('dec2', 64, 'up'), ('dec3', 32, 'up')]
    """
    filters = _check_filters(filters)
    _check_closure(closure)
    encoder = []
    for i, width in enumerate(filters, start=1):
        pooled = closure == "pool4" or i < N_ENCODER_BLOCKS
        encoder.append(BlockSpec(f"enc{i}", width, "pool" if pooled else None,
                                 f"enc{i}_pool" if pooled else f"enc{i}_relu"))
    decoder = tuple(BlockSpec(f"dec{i}", width, "up")
                    for i, width in enumerate(reversed(filters[:-1]), start=1))
    return tuple(encoder), decoder


DEFAULT_ARCHITECTURE = {closure: architecture(DEFAULT_FILTERS, closure) for closure in CLOSURES}
"""The block tables with the default widths, per closure."""


def _conv_bn_relu(x, block: BlockSpec, **relu_options):
    """``<block>_conv`` 3x3 same → ``<block>_bn`` → ``<block>_relu``: the body of every block."""
    x = keras.layers.Conv2D(block.filters, 3, padding="same", name=f"{block.name}_conv")(x)
    x = BatchNorm(name=f"{block.name}_bn")(x)
    return keras.layers.ReLU(name=f"{block.name}_relu", **relu_options)(x)


def build_encoder(input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                  filters: Sequence[int] = DEFAULT_FILTERS,
                  sparsity: float = DEFAULT_SPARSITY,
                  closure: str = "code6",
                  name: str = "encoder") -> keras.Model:
    """The convolutional sparse encoder (§3.2): image -> code.

    The code is ``(H/8, W/8, filters[-1])`` under ``code6`` and
    ``(H/16, W/16, filters[-1])`` under ``pool4``. ``sparsity`` is the L1
    activity coefficient (0 turns the penalty off).
    """
    _check_closure(closure)
    input_shape = _check_input_shape(input_shape, closure)
    if not sparsity >= 0:
        raise ValueError(f"sparsity must be >= 0. Received: sparsity={sparsity!r}")
    blocks, _ = architecture(filters, closure)

    def regulariser(layer_name: str, block: BlockSpec) -> dict:
        if block.penalty != layer_name:
            return {}
        penalty = keras.regularizers.L1(sparsity) if sparsity > 0 else None
        return {"activity_regularizer": penalty, "dtype": PENALTY_DTYPE}

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for block in blocks:
        relu = f"{block.name}_relu"
        x = _conv_bn_relu(x, block, **regulariser(relu, block))
        if block.resample == "pool":
            pool = f"{block.name}_pool"
            x = keras.layers.MaxPooling2D(2, name=pool, **regulariser(pool, block))(x)
    return keras.Model(inputs, x, name=name)


def build_decoder(code_shape: Sequence[int],
                  filters: Sequence[int] = DEFAULT_FILTERS,
                  out_channels: int = 1,
                  closure: str = "code6",
                  name: str = "decoder") -> keras.Model:
    """The convolutional decoder (§3.2): code -> reconstruction in [0, 1].

    ``filters`` are the encoder's widths; the three decoder blocks use
    ``reversed(filters[:-1])``. Under ``pool4`` a final ``dec_out_up`` doubles
    the size once more so the output matches the 48x48 input.
    """
    _check_closure(closure)
    code_shape = tuple(int(d) for d in code_shape)
    if len(code_shape) != 3 or min(code_shape) < 1:
        raise ValueError(f"code_shape must be (height, width, channels). Received: code_shape={code_shape!r}")
    if int(out_channels) < 1:
        raise ValueError(f"out_channels must be >= 1. Received: out_channels={out_channels!r}")
    _, blocks = architecture(filters, closure)
    inputs = keras.Input(shape=code_shape, name="code")
    x = inputs
    for block in blocks:
        x = _conv_bn_relu(x, block)
        x = keras.layers.UpSampling2D(2, name=f"{block.name}_up")(x)
    if closure == "pool4":
        x = keras.layers.UpSampling2D(2, name="dec_out_up")(x)
    outputs = keras.layers.Conv2D(int(out_channels), 3, padding="same", activation="sigmoid",
                                  dtype="float32", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def build_autoencoder(input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                      filters: Sequence[int] = DEFAULT_FILTERS,
                      sparsity: float = DEFAULT_SPARSITY,
                      closure: str = "code6",
                      name: str = "csa_autoencoder") -> keras.Model:
    """The CSA for unsupervised pretraining (§3.2): image -> encoder -> decoder -> image.

    The encoder and decoder are nested models, so
    ``autoencoder.get_layer("encoder")`` is the encoder to hand to
    :func:`build_classifier`. Train it with the reconstruction MSE; the four
    sparsity terms are in ``autoencoder.losses``.
    """
    encoder = build_encoder(input_shape, filters, sparsity, closure, name="encoder")
    shape = encoder.input.shape[1:]
    decoder = build_decoder(encoder.output.shape[1:], filters, shape[-1], closure, name="decoder")
    inputs = keras.Input(shape=shape, name="autoencoder_input")
    return keras.Model(inputs, decoder(encoder(inputs)), name=name)


def build_classifier(encoder: keras.Model,
                     num_classes: int,
                     dense_units: int = 128,
                     name: str = "csa_classifier") -> keras.Model:
    """The emotion classifier (§3.3): encoder, Flatten, Dense(128, relu), Dense(K, softmax).

    Built on ``encoder.input`` / ``encoder.output``, so the result is a flat
    functional model whose layers are the encoder's own layer objects
    (``enc4_conv`` is reachable by name for Grad-CAM) and whose weights are
    the encoder's variables: fine-tuning the classifier fine-tunes the
    pretrained encoder, as the paper does.
    """
    if not isinstance(encoder, keras.Model) or len(encoder.outputs) != 1:
        raise ValueError("encoder must be a keras.Model with one output (build_encoder's)")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes!r}")
    if int(dense_units) < 1:
        raise ValueError(f"dense_units must be >= 1. Received: dense_units={dense_units!r}")
    x = keras.layers.Flatten(name="flatten")(encoder.output)
    x = keras.layers.Dense(int(dense_units), activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", dtype="float32",
                                 name=CLASSIFIER_OUTPUT)(x)
    return keras.Model(encoder.input, outputs, name=name)
