"""``BatchNorm``: Keras's BatchNormalization with the project's settings, on TensorFlow's fused kernel.

Keras 3 normalises as a composition of ``ops.moments`` and
``ops.batch_normalization``: on the TensorFlow backend a dozen element-wise
ops and reductions forward and as many backward, all in float32 (under
``mixed_bfloat16`` the bfloat16 activations are cast up and back down around
them). TensorFlow's ``FusedBatchNormV3`` does the statistics and the
normalisation in one oneDNN kernel, and its gradient in one more, on
bfloat16 data directly. Measured side by side (``benchmarks/levers.py``,
docs/performance.md), it made training 1.08-1.41x as fast (the CSA under
``mixed_bfloat16`` the most) and cut the Voting ResNet's bfloat16 peak
memory by 22%.

The fused kernel is used where it computes exactly what Keras's layer
computes: TensorFlow backend, 4-D inputs normalised over the last axis, no
mask, no renormalisation, no cross-replica synchronisation, float32,
bfloat16 or float16 inputs. Everything else goes to Keras's own ``call``.
Training normalises with the batch statistics and moves the moving ones as
Keras does (``moving * momentum + batch * (1 - momentum)``, with the biased
batch variance: the kernel returns the unbiased one, rescaled here by
``(n - 1) / n``); inference uses the moving statistics. The ``epsilon`` is
passed to the raw op as given (``tf.nn.fused_batch_norm`` would raise it to
1.001e-5). This is the one layer of the project that calls TensorFlow rather
than ``keras.ops``: no backend-neutral op is fused.

The defaults are PyTorch's (momentum 0.9 in Keras's convention, epsilon
1e-5; see :mod:`csa_keras.layers`). The weights and config are Keras's
BatchNormalization's, and the project's ``.keras`` files hold Keras's own
class in its place (``saved_as``, :mod:`csa_keras.utils.artifacts`): the
fused kernel is a training speed-up, and a saved model loads with plain
``keras.models.load_model`` where this project is not installed.
"""
from __future__ import annotations

import keras

BN_MOMENTUM = 0.9
"""Moving-average momentum of every BatchNormalization (PyTorch's 0.1, in Keras's convention)."""

BN_EPSILON = 1e-5
"""Variance epsilon of every BatchNormalization (PyTorch's default)."""

FUSED_DTYPES = ("float32", "bfloat16", "float16")
"""Input dtypes the fused kernel takes."""


@keras.saving.register_keras_serializable(package="csa_keras")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization (momentum 0.9, epsilon 1e-5) on TensorFlow's fused kernel where it applies.

    Same arguments, variables, config and results as
    ``keras.layers.BatchNormalization`` (module docstring).
    """

    saved_as = keras.layers.BatchNormalization
    """The Keras class the project's model files hold in this layer's place."""

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON, **kwargs) -> None:
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3) and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        if training and self.trainable:
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.zeros((0,), "float32"),
                variance=tf.zeros((0,), "float32"), epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, "float32")
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return tf.cast(outputs, self.compute_dtype)
