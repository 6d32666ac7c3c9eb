"""Image decoding and Viola-Jones face preprocessing with an on-disk cache.

The CSA paper (§3.1) detects the face with the Viola-Jones cascade, crops it
to 48x48 and scales it to [0, 1]; SPEC §2 "Face preprocessing" settles the
details this module implements:

* :func:`decode_image` turns any file a dataset may hold (8- or 16-bit, grey,
  RGB, RGBA, palette PNG or TIFF, CMYK JPEG) into one canonical form, ``uint8``
  ``(H, W, 3)`` RGB, and names what is wrong with a file it cannot use
  (:class:`ImageDecodeError` with a ``reason``). Pillow decodes (it reports
  truncated files, where OpenCV silently fills them with grey); OpenCV is the
  fallback for formats Pillow does not know. Very large images are reduced
  while decoding (JPEG DCT scaling through ``Image.draft``) and at once after,
  so what is kept has at most ``FaceSettings.max_side`` pixels a side.
* :class:`FaceDetector` wraps OpenCV's ``haarcascade_frontalface_default.xml``.
* :func:`preprocess_image` crops one image by a given box (AffectNet), by the
  largest detected face, or takes it whole (face crops such as CK+48), then
  converts to grey (or keeps RGB for the Voting ResNet) and resizes to
  ``size x size`` with ``cv2.INTER_AREA`` (``cv2.INTER_LINEAR`` when a crop
  is smaller than the output and must be enlarged).
* :func:`preprocess_samples` does that for a whole catalogue in parallel
  worker processes with a progress bar, counts every skip, and caches the
  result on disk keyed by the source files and the settings, so the next run
  does no decoding and no detection.

Images reach the models scaled to [0, 1]; this module keeps ``uint8`` so the
arrays held in memory and in the cache stay a quarter of the size.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import PIL
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from csa_keras.data.dataset import Sample, SkipLog

CACHE_VERSION = 1
"""Bumped whenever preprocessing changes what it produces, so old caches are ignored."""

CASCADE_FILE = "haarcascade_frontalface_default.xml"

AUTO_DETECT_FACTOR = 4
"""With ``detect="auto"``, an image whose longer side exceeds this many times
the output size (192 pixels at 48) is taken as a frame that needs detection.
Set above 2 so that aligned face crops such as RAF-DB's 100x100 are resized
whole rather than searched for a face they already are."""

DECODE_REASONS = (
    "missing_file",
    "unreadable_file",
    "empty_file",
    "unreadable_image",
    "truncated_image",
    "corrupt_image",
    "image_too_large",
    "bad_pixels",
)
"""Reasons an :class:`ImageDecodeError` (and a skip in the run report) can give."""

STATUSES = ("given_box", "detected", "no_face_center", "no_face_skipped", "resized")
"""What :func:`preprocess_image` did with an image."""

_DETECT_MODES = ("auto", "always", "never")
_NO_FACE_MODES = ("skip", "center", "error")
_DISABLED_CACHE_VALUES = ("off", "0", "false", "no", "none")


class ImageDecodeError(ValueError):
    """A file that cannot be used as an image; ``reason`` is one of :data:`DECODE_REASONS`."""

    def __init__(self, reason: str, source: str | os.PathLike | bytes, detail: str = "") -> None:
        self.reason = reason
        self.source = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        self.detail = detail
        message = f"{self.source}: {reason.replace('_', ' ')}"
        super().__init__(message + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        return (type(self), (self.reason, self.source, self.detail))


class NoFaceError(ValueError):
    """Raised with ``no_face="error"`` when the cascade finds no face in an image."""

    def __init__(self, source: str) -> None:
        self.source = str(source)
        super().__init__(f"no face found in {self.source} (no_face='error'; use 'skip' or 'center' to go on)")

    def __reduce__(self):
        return (type(self), (self.source,))


class FaceDetectorError(RuntimeError):
    """The Viola-Jones cascade cannot be loaded (OpenCV 5 or a broken install)."""


@dataclasses.dataclass(frozen=True)
class FaceSettings:
    """How images become faces (SPEC §2): output size and colour, detection policy.

    ``detect``: ``auto`` detects in frames (catalogues that say
    ``needs_detection``, or images larger than ``AUTO_DETECT_FACTOR x size``)
    and resizes face crops whole; ``always`` / ``never`` force either.
    ``no_face``: what to do with a frame where the cascade finds nothing:
    ``skip`` it (counted), take the ``center`` square (counted), or raise
    :class:`NoFaceError`. ``scale_factor``, ``min_neighbors`` and
    ``min_size`` (pixels) go to ``detectMultiScale``. ``margin`` enlarges the
    face box by that fraction of its width and height, about its centre.
    ``max_side`` bounds the decoded image: larger images are reduced right
    away (boxes are rescaled to match).
    """

    size: int = 48
    colour: bool = False
    detect: str = "auto"
    no_face: str = "skip"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    margin: float = 0.0
    max_side: int = 1024

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.size, int) and self.size >= 8, f"face size must be an integer >= 8, got {self.size!r}"),
            (self.detect in _DETECT_MODES, f"detect must be one of {', '.join(_DETECT_MODES)}, got {self.detect!r}"),
            (self.no_face in _NO_FACE_MODES, f"no_face must be one of {', '.join(_NO_FACE_MODES)}, got {self.no_face!r}"),
            (self.scale_factor > 1.0, f"scale_factor must be > 1, got {self.scale_factor!r}"),
            (isinstance(self.min_neighbors, int) and self.min_neighbors >= 0,
             f"min_neighbors must be an integer >= 0, got {self.min_neighbors!r}"),
            (isinstance(self.min_size, int) and self.min_size >= 1, f"min_size must be an integer >= 1, got {self.min_size!r}"),
            (0.0 <= self.margin <= 2.0, f"margin must be in [0, 2], got {self.margin!r}"),
            (isinstance(self.max_side, int) and self.max_side >= 2 * self.size,
             f"max_side must be an integer >= 2 x size, got {self.max_side!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def channels(self) -> int:
        return 3 if self.colour else 1


# --------------------------------------------------------------------------- decoding


def _rgb_from_pil(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as ``uint8`` RGB: 16-bit scaled by 1/257, alpha composited on black."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image)
        if mode != "I" or values.max(initial=0) > 255:
            values = np.clip(values.astype(np.float64), 0, 65535) / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if values.max(initial=0) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("P", "PA") and (mode == "PA" or "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        image = background
    if image.mode in ("1", "L"):
        grey = np.asarray(image.convert("L"))
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def _reduce(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None or max(rgb.shape[:2]) <= max_side:
        return rgb
    factor = max_side / max(rgb.shape[:2])
    new_size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    return cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)


def _os_error_reason(error: OSError) -> str:
    """Pillow reports a file cut short as an ``OSError`` saying "truncated"; any other is corruption."""
    return "truncated_image" if "truncated" in str(error).lower() else "corrupt_image"


def read_image(
    source: str | os.PathLike | bytes, max_side: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``source`` like :func:`decode_image` and also return its original ``(height, width)``.

    The original size (after EXIF orientation) lets a caller map a box given
    in the file's pixel coordinates onto the possibly reduced array.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if is_bytes:
        data = bytes(source)
        if not data:
            raise ImageDecodeError("empty_file", source)
        stream: io.BytesIO | str = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageDecodeError("missing_file", source) from None
        except OSError as error:
            raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None
        if path.is_dir():
            raise ImageDecodeError("unreadable_file", source, "a folder, not a file")
        if size == 0:
            raise ImageDecodeError("empty_file", source)
        stream = str(path)

    try:
        image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
    except UnidentifiedImageError:
        return _read_with_opencv(source, max_side)
    except PermissionError as error:
        raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None
    except OSError as error:
        raise ImageDecodeError(_os_error_reason(error), source) from None
    except Exception as error:  # noqa: BLE001 - any decoder failure on untrusted bytes is a bad file
        raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None

    with image:
        width, height = image.size
        if max_side is not None and max(width, height) > max_side and image.format == "JPEG":
            factor = max_side / max(width, height)
            image.draft(None, (max(1, int(width * factor)), max(1, int(height * factor))))
        try:
            image.load()
            drafted = image.size
            oriented = ImageOps.exif_transpose(image)
            if oriented.size != drafted and oriented.size == drafted[::-1]:
                width, height = height, width
            rgb = _rgb_from_pil(oriented)
        except Image.DecompressionBombError as error:
            raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
        except OSError as error:
            raise ImageDecodeError(_os_error_reason(error), source) from None
        except Exception as error:  # noqa: BLE001 - any decoder failure on untrusted bytes is a bad file
            raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None
    return np.ascontiguousarray(_reduce(rgb, max_side)), (height, width)


def _read_with_opencv(source: str | os.PathLike | bytes, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Formats Pillow does not identify; OpenCV decodes them or the file is not an image."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        buffer = np.frombuffer(bytes(source), dtype=np.uint8)
    else:
        buffer = np.fromfile(str(source), dtype=np.uint8)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError("unreadable_image", source, "not an image format Pillow or OpenCV can read")
    if decoded.dtype == np.uint16:
        decoded = np.rint(decoded / 257.0).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        decoded = cv2.normalize(decoded, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if decoded.ndim == 2:
        rgb = cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    elif decoded.shape[2] == 4:
        alpha = decoded[..., 3:4].astype(np.uint16)
        rgb = cv2.cvtColor(((decoded[..., :3] * alpha + 127) // 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    else:
        rgb = cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(_reduce(rgb, max_side)), decoded.shape[:2]


def decode_image(source: str | os.PathLike | bytes, max_side: int | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes to ``uint8`` ``(H, W, 3)`` RGB, the one canonical form.

    Grey, palette, 16-bit, RGBA/LA (composited on black) and CMYK sources
    are all converted; EXIF orientation is applied as OpenCV's ``imread``
    does. With ``max_side``, a larger image is reduced while decoding
    (JPEG) and right after, keeping its aspect ratio.

    Raises :class:`ImageDecodeError` (a ``ValueError``) whose ``reason`` says
    why: ``missing_file``, ``empty_file``, ``unreadable_image`` (not an image,
    e.g. a text file named ``.jpg``), ``truncated_image``, ``corrupt_image``,
    ``image_too_large`` (Pillow's decompression-bomb limit), ...
    """
    return read_image(source, max_side)[0]


# --------------------------------------------------------------------------- detection


def cascade_path() -> str:
    """The path of OpenCV's frontal-face Haar cascade, or :class:`FaceDetectorError`."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = os.path.join(folder, CASCADE_FILE) if folder else None
    if not hasattr(cv2, "CascadeClassifier") or path is None or not os.path.isfile(path):
        raise FaceDetectorError(
            f"OpenCV {cv2.__version__} has no {CASCADE_FILE}: Viola-Jones face detection needs "
            "opencv-python(-headless) 4.x (OpenCV 5 ships no Haar cascades)"
        )
    return path


class FaceDetector:
    """Viola-Jones face detection (CSA §3.1) with OpenCV's frontal-face Haar cascade.

    ``detect`` returns every face box ``(x, y, w, h)`` in a grey ``uint8``
    image; ``largest`` the one with the largest area, or ``None``.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 cascade: str | os.PathLike | None = None) -> None:
        path = str(cascade) if cascade is not None else cascade_path()
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise FaceDetectorError(f"cannot load the Haar cascade {path} (needs OpenCV 4.x)")
        self.classifier = classifier
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    @classmethod
    def from_settings(cls, settings: FaceSettings) -> "FaceDetector":
        return cls(settings.scale_factor, settings.min_neighbors, settings.min_size)

    def detect(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        grey = np.asarray(grey)
        if grey.ndim == 3 and grey.shape[2] == 1:
            grey = grey[..., 0]
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"face detection takes a grey uint8 (H, W) image, got {grey.dtype} {grey.shape}")
        boxes = self.classifier.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return [tuple(int(v) for v in box) for box in boxes]

    def largest(self, grey: np.ndarray) -> tuple[int, int, int, int] | None:
        boxes = self.detect(grey)
        if not boxes:
            return None
        return max(boxes, key=lambda box: box[2] * box[3])


# --------------------------------------------------------------------------- one image


def _enlarge(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    return x - margin * w / 2, y - margin * h / 2, w * (1 + margin), h * (1 + margin)


def _clip(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int] | None:
    """``box`` rounded (half up, keeping its size) and clipped to the image; ``None`` if nothing is left."""
    x, y, w, h = box
    x0, y0 = math.floor(x + 0.5), math.floor(y + 0.5)
    x1, y1 = x0 + math.floor(w + 0.5), y0 + math.floor(h + 0.5)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _centre_square(height: int, width: int) -> tuple[int, int, int, int]:
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    h, w = crop.shape[:2]
    if (h, w) == (size, size):
        return crop.copy()
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _as_uint8_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"images must be (H, W), (H, W, 1) or RGB (H, W, 3), got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image has no pixels: shape {image.shape}")
    return image


def _crop_face(
    image: np.ndarray,
    settings: FaceSettings,
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: FaceDetector | _LazyDetector | None = None,
    source: str = "<image>",
    original_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray | None, str, tuple[int, int, int, int] | None]:
    """:func:`preprocess_image` plus the crop box used.

    The box is in ``image`` coordinates, or in the original file's when
    ``original_shape`` says the decoded image was reduced from it (given
    boxes are then mapped onto the reduced image first).
    """
    image = _as_uint8_image(image)
    height, width = image.shape[:2]
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    crop_box: tuple[int, int, int, int] | None
    if box is not None:
        if original_shape is not None and tuple(original_shape) != (height, width):
            sy, sx = height / original_shape[0], width / original_shape[1]
            box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        crop_box = _clip(_enlarge(box, settings.margin), height, width)
        status = "given_box"
    else:
        detect = settings.detect == "always" or (
            settings.detect == "auto"
            and (needs_detection or max(height, width) > AUTO_DETECT_FACTOR * settings.size)
        )
        if detect:
            detector = detector if detector is not None else FaceDetector.from_settings(settings)
            found = detector.largest(grey)
            crop_box = None if found is None else _clip(_enlarge(found, settings.margin), height, width)
            status = "detected"
        else:
            crop_box, status = (0, 0, width, height), "resized"

    if crop_box is None:
        if settings.no_face == "error":
            raise NoFaceError(source)
        if settings.no_face == "skip":
            return None, "no_face_skipped", None
        crop_box, status = _centre_square(height, width), "no_face_center"

    x, y, w, h = crop_box
    if settings.colour:
        region = image[y:y + h, x:x + w] if image.ndim == 3 else cv2.cvtColor(grey[y:y + h, x:x + w], cv2.COLOR_GRAY2RGB)
        face = _resize(region, settings.size)
    else:
        face = _resize(grey[y:y + h, x:x + w], settings.size)[..., None]
    if original_shape is not None and tuple(original_shape) != (height, width):
        sy, sx = original_shape[0] / height, original_shape[1] / width
        crop_box = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    return np.ascontiguousarray(face, dtype=np.uint8), status, crop_box


def preprocess_image(
    image: np.ndarray,
    settings: FaceSettings = FaceSettings(),
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: FaceDetector | None = None,
    source: str = "<image>",
) -> tuple[np.ndarray | None, str]:
    """One decoded image to a ``uint8`` face ``(size, size, C)`` and what was done (SPEC §2).

    ``image`` is ``uint8`` grey ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)``.
    A given ``box`` ``(x, y, w, h)`` (AffectNet) is cropped, clipped to the
    image (status ``given_box``). Otherwise, when ``settings.detect`` asks
    for it (see :class:`FaceSettings`), the largest Viola-Jones face is
    cropped (``detected``); failing a face, the ``no_face`` policy gives
    ``(None, "no_face_skipped")``, the centre square (``no_face_center``) or
    :class:`NoFaceError` naming ``source``. Else the whole image is resized
    (``resized``). ``C`` is 1 (grey, ``cv2.COLOR_RGB2GRAY``) or 3 (RGB).
    """
    face, status, _ = _crop_face(image, settings, box, needs_detection, detector, source)
    return face, status


# --------------------------------------------------------------------------- many images


@dataclasses.dataclass
class PreprocessResult:
    """Faces of the samples that survived preprocessing, and the account of the rest.

    ``images[i]`` is the face of ``samples[kept[i]]``. ``statuses`` has one
    entry per input sample: a :data:`STATUSES` value, or the decode reason
    of a skipped file. ``boxes`` holds the crop box of each sample in its
    original pixel coordinates (``-1`` where none). ``from_cache`` says the
    result was read from the on-disk cache (no decoding, no detection).
    """

    images: np.ndarray
    kept: np.ndarray
    skipped: SkipLog
    statuses: np.ndarray
    boxes: np.ndarray
    n_detected: int
    n_no_face: int
    from_cache: bool = False
    seconds: float = 0.0
    cache_path: str | None = None

    @property
    def status_counts(self) -> dict[str, int]:
        values, counts = np.unique(self.statuses.astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts)}


def default_cache_dir() -> Path | None:
    """``$CSA_KERAS_CACHE`` (``off`` disables), else ``$XDG_CACHE_HOME/csa_keras``, else ``~/.cache/csa_keras``."""
    value = os.environ.get("CSA_KERAS_CACHE")
    if value is not None and value.strip():
        if value.strip().lower() in _DISABLED_CACHE_VALUES:
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "csa_keras"


def _resolve_cache_dir(cache_dir: str | os.PathLike | bool | None) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def cache_key(samples: Sequence[Sample], settings: FaceSettings, needs_detection: bool = False) -> str:
    """A digest of everything a preprocessing result depends on.

    Each file enters with its absolute path, size and ``mtime_ns`` (so an
    edited or replaced file invalidates the entry), inline pixels with a
    hash of their bytes; then the box of each sample, the settings, whether
    the catalogue needs detection, and the versions of this cache format,
    OpenCV and Pillow.
    """
    digest = hashlib.blake2b(digest_size=20)
    header = {
        "cache_version": CACHE_VERSION,
        "settings": dataclasses.asdict(settings),
        "needs_detection": bool(needs_detection),
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
        "n": len(samples),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for sample in samples:
        if sample.pixels is not None:
            pixels = np.ascontiguousarray(sample.pixels)
            identity = ["pixels", str(pixels.dtype), list(pixels.shape), hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()]
        else:
            path = os.path.abspath(sample.source)
            try:
                stat = os.stat(path)
                identity = ["file", path, stat.st_size, stat.st_mtime_ns]
            except OSError:
                identity = ["file", path, None, None]
        box = None if sample.box is None else [float(v) for v in sample.box]
        digest.update(json.dumps([sample.source, identity, box]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _skiplog_to_json(log: SkipLog) -> str:
    return json.dumps({"counts": dict(log.counts), "examples": log.examples})


def _skiplog_from_json(text: str) -> SkipLog:
    data = json.loads(text)
    log = SkipLog()
    for reason, n in data["counts"].items():
        log.counts[reason] += int(n)
    log.examples = {reason: list(examples) for reason, examples in data["examples"].items()}
    return log


def _save_cache(path: Path, result: PreprocessResult, key: str) -> None:
    """Write ``result`` to ``path`` atomically; a cache that cannot be written only warns."""
    meta = {"key": key, "n_detected": result.n_detected, "n_no_face": result.n_no_face,
            "cache_version": CACHE_VERSION}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(
                    stream,
                    images=result.images,
                    kept=result.kept,
                    statuses=result.statuses.astype(str),
                    boxes=result.boxes,
                    skipped=np.array(_skiplog_to_json(result.skipped)),
                    meta=np.array(json.dumps(meta)),
                )
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
    except OSError as error:
        warnings.warn(f"face cache not written to {path}: {error}", RuntimeWarning, stacklevel=3)


def _load_cache(path: Path, key: str, n_samples: int, settings: FaceSettings) -> PreprocessResult | None:
    """The cached result at ``path``, or ``None`` if absent, unreadable or not for ``key``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            images, kept = data["images"], data["kept"]
            statuses, boxes = data["statuses"], data["boxes"]
            skipped = _skiplog_from_json(str(data["skipped"]))
    except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed, never fatal
        return None
    expected = (len(kept), settings.size, settings.size, settings.channels)
    if meta.get("key") != key or images.shape != expected or len(statuses) != n_samples:
        return None
    return PreprocessResult(
        images=images, kept=kept.astype(np.int64), skipped=skipped, statuses=statuses.astype(object),
        boxes=boxes, n_detected=int(meta["n_detected"]), n_no_face=int(meta["n_no_face"]),
        from_cache=True, cache_path=str(path),
    )


def _pixels_image(pixels: np.ndarray) -> np.ndarray | None:
    """Inline pixels (``fer2013.csv``) as a ``uint8`` image, or ``None`` if they make no image."""
    array = np.asarray(pixels)
    if array.ndim == 1:
        side = int(round(np.sqrt(array.size)))
        if side * side != array.size or side == 0:
            return None
        array = array.reshape(side, side)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)) or array.size == 0:
        return None
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.min() < 0 or array.max() > 255:
            return None
        array = np.rint(array).astype(np.uint8)
    return array


class _LazyDetector:
    """Builds the cascade the first time a face is searched, so runs that never detect never load it."""

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self.detector: FaceDetector | None = None

    def largest(self, grey: np.ndarray) -> tuple[int, int, int, int] | None:
        if self.detector is None:
            self.detector = FaceDetector.from_settings(self.settings)
        return self.detector.largest(grey)


def _process(
    source: str,
    box: Sequence[float] | None,
    pixels: np.ndarray | None,
    settings: FaceSettings,
    needs_detection: bool,
    detector: _LazyDetector,
) -> tuple[np.ndarray | None, str, tuple[int, int, int, int] | None]:
    """Decode and crop one sample: ``(face or None, status or skip reason, crop box)``."""
    if pixels is not None:
        image = _pixels_image(pixels)
        if image is None:
            return None, "bad_pixels", None
        original_shape = None
    else:
        try:
            image, original_shape = read_image(source, settings.max_side)
        except ImageDecodeError as error:
            return None, error.reason, None
    return _crop_face(image, settings, box, needs_detection, detector, source, original_shape)


class _Bar(tqdm):
    """A tqdm bar without tqdm's monitor thread, so a process stays single-threaded and can fork workers."""

    monitor_interval = 0


_WORKER_STATE: dict = {}


def _init_worker(settings: FaceSettings, needs_detection: bool, forked: bool) -> None:
    """Per worker process: one OpenCV thread (the pool supplies the parallelism), one lazy cascade.

    A forked worker already inherits one OpenCV thread from the parent (see
    :func:`_run`); calling ``cv2.setNumThreads`` there would tear down a
    thread pool copied mid-state and can deadlock.
    """
    if not forked:
        cv2.setNumThreads(1)
    _WORKER_STATE.update(settings=settings, needs_detection=needs_detection, detector=_LazyDetector(settings))


def _work(item: tuple[str, tuple | None]) -> tuple[np.ndarray | None, str, tuple[int, int, int, int] | None]:
    source, box = item
    state = _WORKER_STATE
    return _process(source, box, None, state["settings"], state["needs_detection"], state["detector"])


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` where it is safe (POSIX but not macOS, one Python thread, TensorFlow not loaded), else ``spawn``.

    Forked workers start at once and need no ``if __name__ == "__main__"``
    guard in the calling script; once TensorFlow runs its thread pools a
    fork would copy them in an undefined state, so fresh processes are
    spawned instead.
    """
    forkable = (
        "fork" in multiprocessing.get_all_start_methods()
        and sys.platform != "darwin"
        and threading.active_count() == 1
        and "tensorflow" not in sys.modules
    )
    return multiprocessing.get_context("fork" if forkable else "spawn")


def _run(
    samples: Sequence[Sample],
    settings: FaceSettings,
    needs_detection: bool,
    workers: int,
    progress: bool,
) -> list[tuple[np.ndarray | None, str, tuple[int, int, int, int] | None]]:
    """The outcome of :func:`_process` for every sample, files spread over ``workers`` processes.

    Inline-pixel samples are cheap and stay in this process (while the
    pool works on the files). Forked workers are all started by the first
    ``map`` submission; around it OpenCV is set to one thread, so no
    OpenCV thread pool is copied into a child in the middle of its work.
    Spawned workers (once TensorFlow is loaded) import the caller's main
    module, as ``multiprocessing`` does; should the pool break (a script
    without an ``if __name__ == "__main__"`` guard), the remaining files
    are processed here after a warning.
    """
    outcomes: list = [None] * len(samples)
    file_items = [(i, s.source, s.box) for i, s in enumerate(samples) if s.pixels is None]
    detector = _LazyDetector(settings)
    executor = results = None
    if workers > 1:
        chunksize = max(1, min(256, -(-len(file_items) // (workers * 16))))
        context = _pool_context()
        forked = context.get_start_method() == "fork"
        threads = cv2.getNumThreads()
        if forked:
            cv2.setNumThreads(1)
        try:
            executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(settings, needs_detection, forked),
            )
            results = executor.map(_work, [(source, box) for _, source, box in file_items], chunksize=chunksize)
        finally:
            if forked:
                cv2.setNumThreads(threads)
    try:
        with _Bar(total=len(samples), desc="faces", unit="img", disable=not progress, leave=False) as bar:
            for i, sample in enumerate(samples):
                if sample.pixels is not None:
                    outcomes[i] = _process(sample.source, sample.box, sample.pixels, settings, needs_detection, detector)
                    bar.update(1)
            done = 0
            if results is not None:
                try:
                    for (index, _, _), outcome in zip(file_items, results):
                        outcomes[index] = outcome
                        done += 1
                        bar.update(1)
                except concurrent.futures.process.BrokenProcessPool as error:
                    warnings.warn(
                        f"face preprocessing workers failed ({error}); finishing in this process. "
                        "A script that uses workers > 1 must guard its entry point with "
                        "'if __name__ == \"__main__\":'",
                        RuntimeWarning, stacklevel=3,
                    )
            for index, source, box in file_items[done:]:
                outcomes[index] = _process(source, box, None, settings, needs_detection, detector)
                bar.update(1)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return outcomes


def preprocess_samples(
    samples: Sequence[Sample],
    settings: FaceSettings = FaceSettings(),
    needs_detection: bool = False,
    workers: int | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Decode and crop every sample into a face (SPEC §2), in parallel, cached on disk.

    Files are decoded with :func:`read_image` and cropped with
    :func:`preprocess_image`; samples carrying inline ``pixels``
    (``fer2013.csv``) use them directly. A file that cannot be decoded and a
    frame without a face under ``no_face="skip"`` are left out and counted in
    ``skipped`` by reason (``no_face`` for the latter); ``no_face="error"``
    raises :class:`NoFaceError`.

    ``workers`` processes (default ``os.cpu_count()``, at most one per
    file) each load the cascade once and run OpenCV single-threaded;
    ``workers=1`` runs in this process (OpenCV keeps its own threading).
    Workers are forked where that is safe and spawned otherwise (see
    :func:`_pool_context`); the progress bar (tqdm, on stderr) shows with
    ``progress=True``.
    ``cache_dir``: a folder, ``None`` for :func:`default_cache_dir`, or
    ``False`` for no cache. The entry is one ``.npz`` per
    :func:`cache_key`, written atomically (temporary file, then
    ``os.replace``); an identical later call loads it without decoding or
    detecting anything.
    """
    if not isinstance(settings, FaceSettings):
        raise ValueError(f"settings must be a FaceSettings, got {type(settings).__name__}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    start = time.perf_counter()
    samples = list(samples)
    folder = _resolve_cache_dir(cache_dir)
    key = cache_path = None
    if folder is not None:
        key = cache_key(samples, settings, needs_detection)
        cache_path = folder / f"faces-v{CACHE_VERSION}-{key}.npz"
        cached = _load_cache(cache_path, key, len(samples), settings)
        if cached is not None:
            cached.seconds = time.perf_counter() - start
            return cached

    n_files = sum(s.pixels is None for s in samples)
    workers = min(workers or os.cpu_count() or 1, max(1, n_files))
    outcomes = _run(samples, settings, needs_detection, workers, progress)
    faces = [outcome[0] for outcome in outcomes]
    statuses = np.array([outcome[1] for outcome in outcomes], dtype=object)
    boxes = np.full((len(samples), 4), -1, dtype=np.int64)
    for i, outcome in enumerate(outcomes):
        if outcome[2] is not None:
            boxes[i] = outcome[2]

    skipped = SkipLog()
    kept = []
    for i, (face, status) in enumerate(zip(faces, statuses)):
        if face is not None:
            kept.append(i)
        else:
            skipped.add("no_face" if status == "no_face_skipped" else status, samples[i].source)
    shape = (settings.size, settings.size, settings.channels)
    images = np.stack([faces[i] for i in kept]) if kept else np.zeros((0, *shape), dtype=np.uint8)
    result = PreprocessResult(
        images=images,
        kept=np.asarray(kept, dtype=np.int64),
        skipped=skipped,
        statuses=statuses,
        boxes=boxes,
        n_detected=int(np.sum(statuses == "detected")),
        n_no_face=int(np.sum((statuses == "no_face_skipped") | (statuses == "no_face_center"))),
        from_cache=False,
        cache_path=None if cache_path is None else str(cache_path),
    )
    if cache_path is not None:
        _save_cache(cache_path, result, key)
    result.seconds = time.perf_counter() - start
    return result
