"""Regrouping of the crop logits and the vote over the views (VRN paper §3.1).

After :class:`~voting_resnet.layers.CropAndMirror` the network classifies
``B * V`` views; :class:`Regroup` folds them back to ``(B, V, K)`` and
:class:`Voting` turns the ``V`` logit vectors of each image into one class
distribution ``(B, K)``:

- ``soft`` (the paper's choice): the mean over the views of the softmax.
- ``hard``: the majority of the views' arg-maxes (the first of equal
  logits, as NumPy's), ties between classes broken by the soft score. To
  stay a distribution whose arg-max is that decision, the output is
  ``(counts + 0.5 * soft) / (V + 0.5)``: the vote counts are integers and
  ``0.5 * soft`` differs by less than 0.5 between classes, so it only
  reorders classes with equal counts, and every row sums to 1.

:func:`soft_vote` and :func:`hard_vote` compute the same in NumPy for
evaluation code that already holds the crop logits.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from csa_keras.utils.messages import one_of

VOTING_MODES = ("soft", "hard")
_TIE_WEIGHT = 0.5


def check_mode(mode: str) -> str:
    """``mode`` itself when it is a voting mode, else a one-line error."""
    if mode not in VOTING_MODES:
        raise ValueError(one_of("voting", VOTING_MODES, mode))
    return mode


@keras.saving.register_keras_serializable(package="voting_resnet")
class Regroup(keras.layers.Layer):
    """``(B * V, K) -> (B, V, K)``: the sample-major views of each image side by side.

    The inverse of the batch folding done by
    :class:`~voting_resnet.layers.CropAndMirror` (Algorithm 1 keeps each
    image's views contiguous). ``num_views=1`` gives the baseline's
    ``(B, 1, K)``.
    """

    def __init__(self, num_views: int, **kwargs):
        super().__init__(**kwargs)
        num_views = int(num_views)
        if num_views < 1:
            raise ValueError(f"num_views must be at least 1. Received: num_views={num_views!r}")
        self.num_views = num_views

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.num_views, inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        if batch is not None and batch % self.num_views:
            raise ValueError(
                f"Regroup '{self.name}': batch {batch} is not a multiple of {self.num_views} views")
        return (None if batch is None else batch // self.num_views, self.num_views, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_views": self.num_views})
        return config


def _first_max(logits):
    """One-hot of each row's arg-max (the first of equal maxima, as NumPy's), without ``argmax``.

    Keras's TensorFlow ``argmax`` orders negative zero below zero with a
    bitwise op that TFLite lacks, so a hard voter built on it does not convert
    to a builtin-only (int8) TFLite model. Equality with the row's maximum,
    then the largest ``K - k`` among the maxima, keep to comparisons and
    reductions that every runtime has.
    """
    num_classes = logits.shape[-1]
    is_max = ops.cast(ops.equal(logits, ops.max(logits, axis=-1, keepdims=True)), "int32")
    rank = is_max * ops.arange(num_classes, 0, -1, dtype="int32")
    return ops.equal(rank, ops.max(rank, axis=-1, keepdims=True))


@keras.saving.register_keras_serializable(package="voting_resnet")
class Voting(keras.layers.Layer):
    """Crop logits ``(B, V, K)`` -> vote distribution ``(B, K)`` (module docstring).

    Args:
        mode: ``"soft"`` (mean softmax, the paper's) or ``"hard"`` (majority of
            arg-maxes, ties broken by the soft score).
        num_views: optional expected ``V``; checked against the input when
            given, inferred from it otherwise.
    """

    def __init__(self, mode: str = "soft", num_views: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_mode(mode)
        self.num_views = None if num_views is None else int(num_views)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"Voting '{self.name}' expects crop logits (batch, views, classes). "
                f"Received: input_shape={tuple(input_shape)}")
        if self.num_views is not None and input_shape[1] not in (None, self.num_views):
            raise ValueError(
                f"Voting '{self.name}' expects {self.num_views} views. Received: input_shape={tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        soft = ops.mean(ops.softmax(inputs, axis=-1), axis=1)
        if self.mode == "soft":
            return soft
        counts = ops.sum(ops.cast(_first_max(inputs), soft.dtype), axis=1)
        views = ops.cast(ops.shape(inputs)[1], soft.dtype)
        return (counts + _TIE_WEIGHT * soft) / (views + _TIE_WEIGHT)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "num_views": self.num_views})
        return config


def _as_views(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3:
        raise ValueError(f"crop logits must be (batch, views, classes). Received: logits with shape {logits.shape}")
    return logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def soft_vote(logits_bvk: np.ndarray) -> np.ndarray:
    """NumPy soft vote: mean over the views of the softmax, ``(B, V, K) -> (B, K)``."""
    return _softmax(_as_views(logits_bvk)).mean(axis=1)


def hard_vote(logits_bvk: np.ndarray) -> np.ndarray:
    """NumPy hard vote ``(B, V, K) -> (B, K)``: ``(counts + 0.5 * soft) / (V + 0.5)``.

    Its arg-max is the majority class of the views' arg-maxes, ties broken by
    the soft vote; the same formula as :class:`Voting` with ``mode="hard"``.
    """
    logits = _as_views(logits_bvk)
    _, views, classes = logits.shape
    counts = np.eye(classes)[logits.argmax(axis=-1)].sum(axis=1)
    return (counts + _TIE_WEIGHT * soft_vote(logits)) / (views + _TIE_WEIGHT)


def vote(logits_bvk: np.ndarray, mode: str = "soft") -> np.ndarray:
    """NumPy vote by name: :func:`soft_vote` or :func:`hard_vote`."""
    return {"soft": soft_vote, "hard": hard_vote}[check_mode(mode)](logits_bvk)
