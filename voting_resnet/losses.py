"""The Voting ResNet training loss (VRN paper §3.3).

The paper trains on "the cross-entropy between the FC layer output and the
image labels ... instead of the soft voting result", so that the network
learns to classify every crop, not only the whole image. With the crop
logits regrouped to ``(B, V, K)`` that is the sparse categorical
cross-entropy of each of the ``B * V`` crops against its image's label,
averaged over the crops.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="voting_resnet")
class CropCrossEntropy(keras.losses.Loss):
    """Mean sparse categorical cross-entropy of every crop against its image's label.

    ``y_true``: integer labels ``(B,)`` or ``(B, 1)``; ``y_pred``: crop logits
    ``(B, V, K)`` (``V = 1`` for the baseline, where this is the ordinary
    cross-entropy). The per-image value is the mean over its ``V`` crops, so
    Keras's batch reduction gives the mean over all ``B * V`` crops, the
    PyTorch ``cross_entropy(logits, labels.repeat_interleave(V))`` of the
    paper's setting.

    Args:
        from_logits: whether ``y_pred`` holds logits (the model's
            ``crop_logits`` output does) or probabilities.
        label_smoothing: the target is ``1 - label_smoothing`` on the label
            and ``label_smoothing / K`` spread over every class (Szegedy et
            al.'s smoothing, Keras's ``categorical_crossentropy``); 0, the
            paper's loss, keeps the exact sparse cross-entropy.
    """

    def __init__(self, from_logits: bool = True, label_smoothing: float = 0.0,
                 name: str = "crop_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("CropCrossEntropy label_smoothing must lie in [0, 1). "
                             f"Received: label_smoothing={label_smoothing}")

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_pred.shape) != 3:
            raise ValueError(
                f"CropCrossEntropy expects crop logits (batch, views, classes). "
                f"Received: y_pred with shape {y_pred.shape}")
        labels = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
        labels = ops.broadcast_to(labels, ops.shape(y_pred)[:2])
        if self.label_smoothing:
            targets = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
            per_crop = keras.losses.categorical_crossentropy(
                targets, y_pred, from_logits=self.from_logits,
                label_smoothing=self.label_smoothing)
        else:
            per_crop = keras.losses.sparse_categorical_crossentropy(
                labels, y_pred, from_logits=self.from_logits)
        return ops.mean(per_crop, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing})
        return config
