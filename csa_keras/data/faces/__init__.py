"""Image decoding and Viola-Jones face preprocessing with an on-disk cache.

The CSA paper (§3.1) detects the face with the Viola-Jones cascade, crops it
to 48x48 and scales it to [0, 1]; the Voting ResNet takes the same crop in
colour. The package does that for single images and whole datasets, one
job a module (``docs/layout.md`` lists them); this file keeps the public imports.

Images reach the models scaled to [0, 1]; this package keeps ``uint8`` so
the arrays held in memory and in the cache stay a quarter of the size.
"""
from csa_keras.data.faces.batch import preprocess_samples
from csa_keras.data.faces.cache import CACHE_ENV, CACHE_VERSION, cache_key, default_cache_dir
from csa_keras.data.faces.crop import crop_face, face_in_box, preprocess_image
from csa_keras.data.faces.decode import (
    DECODE_REASONS,
    IMAGE_EXTENSIONS,
    MAX_DECODED_BYTES,
    MAX_FILE_BYTES,
    ImageDecodeError,
    as_uint8_image,
    decode_image,
    image_from_pixels,
    read_image,
    reduce_image,
)
from csa_keras.data.faces.detect import (
    CASCADE_FILE,
    FaceDetector,
    FaceDetectorError,
    LazyFaceDetector,
    cascade_path,
)
from csa_keras.data.faces.locate import OUTCOMES, FaceFinder, NoFaceError, center_box, detects, locate_faces
from csa_keras.data.faces.result import PreprocessResult
from csa_keras.data.faces.settings import (
    AUTO_DETECT_FACTOR,
    CHANNELS,
    DETECT_MODES,
    NO_FACE_MODES,
    FaceSettings,
    preprocessing_for,
)

__all__ = [
    "AUTO_DETECT_FACTOR",
    "CACHE_ENV",
    "CACHE_VERSION",
    "CASCADE_FILE",
    "CHANNELS",
    "DECODE_REASONS",
    "DETECT_MODES",
    "IMAGE_EXTENSIONS",
    "MAX_DECODED_BYTES",
    "MAX_FILE_BYTES",
    "NO_FACE_MODES",
    "OUTCOMES",
    "FaceDetector",
    "FaceDetectorError",
    "FaceFinder",
    "FaceSettings",
    "ImageDecodeError",
    "LazyFaceDetector",
    "NoFaceError",
    "PreprocessResult",
    "as_uint8_image",
    "cache_key",
    "cascade_path",
    "center_box",
    "crop_face",
    "decode_image",
    "default_cache_dir",
    "detects",
    "face_in_box",
    "image_from_pixels",
    "locate_faces",
    "preprocess_image",
    "preprocess_samples",
    "preprocessing_for",
    "read_image",
    "reduce_image",
]
