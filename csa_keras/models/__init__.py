"""Model builders of the CSA paper (§3.2-3.3, SPEC §3): see :mod:`csa_keras.models.csa`."""
from csa_keras.models.csa import (
    CLOSURES,
    LAST_CONV_LAYER,
    architecture,
    build_autoencoder,
    build_classifier,
    build_decoder,
    build_encoder,
)

__all__ = [
    "CLOSURES",
    "LAST_CONV_LAYER",
    "architecture",
    "build_autoencoder",
    "build_classifier",
    "build_decoder",
    "build_encoder",
]
