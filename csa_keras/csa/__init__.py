"""The CSA task: a convolutional sparse autoencoder for expression recognition.

Mohana & Subashini, *Convolutional Sparse Autoencoder for Emotion
Recognition*: four convolutional encoder blocks whose max-pooling carries an
L1 sparsity penalty and three upsampling decoder blocks, pretrained without
labels on 48x48 faces, then the encoder fine-tuned with a Dense(128) +
softmax head. ``docs/layout.md`` lists its modules.
"""
from csa_keras.csa.config import PRESETS, CSAConfig, preset
from csa_keras.csa.model import (
    CLOSURES,
    LAST_CONV_LAYER,
    architecture,
    build_autoencoder,
    build_classifier,
    build_decoder,
    build_encoder,
)
from csa_keras.csa.training import compile_autoencoder, fit_split, run_csa

__all__ = [
    "CLOSURES",
    "LAST_CONV_LAYER",
    "PRESETS",
    "CSAConfig",
    "architecture",
    "build_autoencoder",
    "build_classifier",
    "build_decoder",
    "build_encoder",
    "compile_autoencoder",
    "fit_split",
    "preset",
    "run_csa",
]
