"""Convolutional Sparse Autoencoder (CSA) for facial expression recognition.

Reference Keras 3 implementation of Mohana & Subashini, *Convolutional Sparse
Autoencoder for Emotion Recognition*, and the shared pieces (data readers,
Viola-Jones preprocessing, evaluation, distribution) that :mod:`voting_resnet`
builds on. Importing the package does not import TensorFlow; the submodules
that need it do.
"""

__version__ = "0.1.0"
