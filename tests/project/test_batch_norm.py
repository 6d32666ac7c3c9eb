"""``csa_keras.layers.BatchNorm``: Keras's BatchNormalization on TensorFlow's fused kernel.

It must compute what ``keras.layers.BatchNormalization`` computes (outputs in
training and inference, moving statistics, gradients), keep its variables and
config, and take the fused kernel only where that holds.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_contract import run_layer_contract

from csa_keras.layers import BN_EPSILON, BN_MOMENTUM, BatchNorm


def _pair(shape, **kwargs):
    """A ``BatchNorm`` and a Keras ``BatchNormalization`` with the same settings and random weights."""
    ours = BatchNorm(**kwargs)
    theirs = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, **kwargs)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(1)
    for w in ours.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    for a, b in zip(theirs.weights, ours.weights):
        a.assign(b.numpy())
    return ours, theirs


def _ops(layer, x, training):
    """The op types of ``layer``'s traced call on ``x``."""
    fn = tf.function(lambda t: layer(t, training=training))
    return {op.type for op in fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph.get_operations()}


def test_defaults_are_the_projects():
    layer = BatchNorm()
    assert (layer.momentum, layer.epsilon) == (BN_MOMENTUM, BN_EPSILON) == (0.9, 1e-5)
    assert isinstance(layer, keras.layers.BatchNormalization)


@pytest.mark.parametrize("training", [True, False])
def test_outputs_moving_statistics_and_gradients_equal_keras(training):
    x = np.random.default_rng(0).normal(3.0, 2.0, (6, 5, 4, 3)).astype("float32")
    ours, theirs = _pair(x.shape)
    start = ours.moving_variance.numpy()
    results = []
    for layer in (ours, theirs):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=training)
            loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=y.dtype))
        grads = tape.gradient(loss, [xt, *layer.trainable_weights])
        results.append((y.numpy(), [g.numpy() for g in grads],
                        layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y1, g1, m1, v1), (y2, g2, m2, v2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m1, m2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-6)
    if training:
        n = x.shape[0] * x.shape[1] * x.shape[2]
        biased = x.reshape(n, -1).var(axis=0)
        expected = start * BN_MOMENTUM + biased * (1 - BN_MOMENTUM)
        np.testing.assert_allclose(v1, expected, rtol=1e-5)


def test_the_fused_kernel_is_what_runs_and_keras_call_where_it_cannot():
    x = tf.zeros((2, 4, 4, 3))
    ours, _ = _pair(x.shape)
    for training in (True, False):
        ops = _ops(ours, x, training)
        assert "FusedBatchNormV3" in ops and "Rsqrt" not in ops, ops
    flat = BatchNorm()
    flat.build((2, 3))
    ops = _ops(flat, tf.zeros((2, 3)), True)
    assert "FusedBatchNormV3" not in ops, "a 2-D input goes to Keras's own call"


def test_bfloat16_runs_fused_on_bfloat16_data_and_stays_close_to_keras():
    x = np.random.default_rng(2).normal(0.0, 1.0, (8, 6, 6, 4)).astype("float32")
    ours = BatchNorm(dtype="mixed_bfloat16")
    theirs = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype="mixed_bfloat16")
    xb = tf.cast(x, "bfloat16")
    ops = _ops(ours, xb, True)
    assert "FusedBatchNormV3" in ops
    y1 = ours(xb, training=True)
    y2 = theirs(xb, training=True)
    assert y1.dtype == y2.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y1, "float32").numpy(), tf.cast(y2, "float32").numpy(), atol=0.05)


def test_keras_contract_and_weights_load_from_a_keras_batchnormalization(tmp_path):
    x = np.random.default_rng(3).random((4, 5, 5, 2)).astype("float32")
    run_layer_contract(BatchNorm, {"name": "bn"}, x, (4, 5, 5, 2), tmp_path, rtol=1e-6, atol=1e-6)
    ours, theirs = _pair(x.shape)
    assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in theirs.weights]
    fresh = BatchNorm()
    fresh.build(x.shape)
    fresh.set_weights(theirs.get_weights())
    np.testing.assert_allclose(fresh(x, training=False), theirs(x, training=False), rtol=1e-5, atol=1e-5)
