"""Data layer: readers for every format of SPEC §2, Viola-Jones preprocessing,
evaluation protocols and the built-in synthetic dataset."""
from csa_keras.data.dataset import (  # noqa: F401
    CANONICAL_CLASSES,
    Catalogue,
    FaceDataset,
    Sample,
    SkipLog,
    canonical_class,
    ordered_classes,
)
