"""Image decoding and Viola-Jones face preprocessing with an on-disk cache.

The CSA paper (§3.1) detects the face with the Viola-Jones cascade, crops it
to 48x48 and scales it to [0, 1]; the Voting ResNet takes the same crop in
colour. The package does that for single images and whole datasets, one
job a module:

* :mod:`~csa_keras.data.faces.settings`: :class:`FaceSettings`, the output
  size and colour and the detection and no-face policies.
* :mod:`~csa_keras.data.faces.decode`: :func:`decode_image` /
  :func:`read_image` turn any file a dataset may hold (8- or 16-bit, grey,
  RGB, RGBA, palette, CMYK) into ``uint8`` ``(H, W, 3)`` RGB, reduced to
  ``max_side``, or raise :class:`ImageDecodeError` with a ``reason``; a
  file over :data:`MAX_FILE_BYTES`, an image over :data:`MAX_DECODED_BYTES`
  once decoded and a special file
  (:func:`~csa_keras.utils.paths.special_file`) are refused before any
  pixel is decoded.
* :mod:`~csa_keras.data.faces.detect`: :class:`FaceDetector`, OpenCV's
  frontal-face Haar cascade.
* :mod:`~csa_keras.data.faces.locate`: :func:`locate_faces`, the one place
  that decides whether an image is searched for faces (:func:`detects`),
  returns the largest face or every face, applies the no-face policy
  (:class:`NoFaceError`, :func:`center_box`) and names what became of the
  image (:data:`OUTCOMES`); training and prediction both call it.
* :mod:`~csa_keras.data.faces.crop`: :func:`preprocess_image` /
  :func:`crop_face`, the crop of one image's face (by a given box, the
  largest detected face or the whole image), and :func:`face_in_box`, the
  cut and ``cv2.INTER_AREA`` resize prediction shares.
* :mod:`~csa_keras.data.faces.cache`: the on-disk cache keyed by the source
  files and the settings (:func:`cache_key`, :func:`default_cache_dir`).
* :mod:`~csa_keras.data.faces.pool`: many samples across worker processes
  with a progress bar.
* :mod:`~csa_keras.data.faces.batch`: :func:`preprocess_samples`, a whole
  catalogue to a :class:`PreprocessResult` (cache, pool, skip counts).

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
