"""Data layer: dataset readers, Viola-Jones face preprocessing, evaluation
protocols and the built-in synthetic dataset.

``load_dataset(path)`` is the entry point: it reads, decodes, detects and
crops a dataset into a :class:`FaceDataset` (``load_dataset()`` gives the
built-in synthetic one). ``python -m csa_keras.data summary PATH`` reports
what it found. Evaluation, training and inference build on this layer; it
imports none of them and no task.
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
    IMAGE_EXTENSIONS,
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
from csa_keras.data.readers import FORMATS, detect_format, read_catalogue  # noqa: F401
from csa_keras.data.synthetic import make_synthetic_dataset  # noqa: F401
