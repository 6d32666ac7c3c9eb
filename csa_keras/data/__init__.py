"""Data layer: readers for every format of SPEC §2, Viola-Jones preprocessing,
evaluation protocols and the built-in synthetic dataset.

``load_dataset(path)`` is the entry point: it reads, decodes, detects and
crops a dataset into a :class:`FaceDataset` (``load_dataset()`` gives the
built-in synthetic one). ``python -m csa_keras.data summary PATH`` reports
what it found.
"""
from csa_keras.data.dataset import (  # noqa: F401
    CANONICAL_CLASSES,
    Catalogue,
    FaceDataset,
    Sample,
    SkipLog,
    canonical_class,
    ordered_classes,
)
from csa_keras.data.faces import (  # noqa: F401
    FaceDetector,
    FaceDetectorError,
    FaceSettings,
    ImageDecodeError,
    NoFaceError,
    PreprocessResult,
    decode_image,
    preprocess_image,
    preprocess_samples,
)
from csa_keras.data.loader import dataset_from_catalogue, load_dataset  # noqa: F401

_LAZY = {
    "read_catalogue": "csa_keras.data.readers",
    "detect_format": "csa_keras.data.readers",
    "FORMATS": "csa_keras.data.readers",
    "make_synthetic_dataset": "csa_keras.data.synthetic",
}


def __getattr__(name: str):
    """Readers and the synthetic generator, imported on first use to keep ``import csa_keras.data`` light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
