"""Layers and layer settings the models of every task share.

Batch normalisation uses PyTorch's defaults (momentum 0.9 in Keras's
convention, epsilon 1e-5) rather than Keras's 0.99: on a CK+-sized training
set the moving statistics of momentum 0.99 had not caught up after
fine-tuning, and the CSA classifier scored at chance in inference while its
training accuracy reached 100%. The Voting ResNet uses the same values, as
the PyTorch ResNet-18 the paper builds on does. Both models build their
normalisation with :class:`BatchNorm`, Keras's layer with these defaults on
TensorFlow's fused kernel (:mod:`csa_keras.layers.batch_norm`).
"""
from csa_keras.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, BatchNorm

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "BatchNorm"]
