"""Layer settings the models of every task share.

Batch normalisation uses PyTorch's defaults (momentum 0.9 in Keras's
convention, epsilon 1e-5) rather than Keras's 0.99: on a CK+-sized training
set the moving statistics of momentum 0.99 had not caught up after
fine-tuning, and the CSA classifier scored at chance in inference while its
training accuracy reached 100%. The Voting ResNet uses the same values, as
the PyTorch ResNet-18 the paper builds on does.
"""

BN_MOMENTUM = 0.9
"""Moving-average momentum of every BatchNormalization (PyTorch's 0.1, in Keras's convention)."""

BN_EPSILON = 1e-5
"""Variance epsilon of every BatchNormalization (PyTorch's default)."""
