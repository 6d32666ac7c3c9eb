"""One decoded image to one face: the crop geometry and the no-face policy.

The CSA paper (§3.1) crops the Viola-Jones face and resizes it to 48x48.
:func:`preprocess_image` crops by a given box (AffectNet), by the largest
detected face, or takes the image whole (face crops such as CK+48), then
converts to grey (or keeps RGB for the Voting ResNet) and resizes to
``size x size`` with ``cv2.INTER_AREA`` (``cv2.INTER_LINEAR`` when a crop is
smaller than the output and must be enlarged). :func:`crop_face` does the
same and also returns the crop box, which prediction draws and reports.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from csa_keras.data.faces.decode import as_uint8_image
from csa_keras.data.faces.detect import Box, FaceDetector
from csa_keras.data.faces.settings import AUTO_DETECT_FACTOR, FaceSettings

STATUSES = ("given_box", "detected", "no_face_center", "no_face_skipped", "resized")
"""What :func:`preprocess_image` did with an image."""


class NoFaceError(ValueError):
    """Raised with ``no_face="error"`` when the cascade finds no face in an image."""

    def __init__(self, source: str) -> None:
        self.source = str(source)
        super().__init__(f"no face found in {self.source} (no_face='error'; use 'skip' or 'center' to go on)")

    def __reduce__(self):
        return (type(self), (self.source,))


class LargestFace(Protocol):
    """Anything that finds the largest face box in a grey image, as :class:`FaceDetector` does."""

    def largest(self, grey: np.ndarray) -> Box | None: ...


def _enlarge(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    """``box`` grown by ``margin`` times its width and height, about its centre."""
    x, y, w, h = (float(v) for v in box)
    return x - margin * w / 2, y - margin * h / 2, w * (1 + margin), h * (1 + margin)


def _clip(box: Sequence[float], height: int, width: int) -> Box | None:
    """``box`` rounded (half up, keeping its size) and clipped to the image; ``None`` if nothing is left."""
    x, y, w, h = box
    x0, y0 = math.floor(x + 0.5), math.floor(y + 0.5)
    x1, y1 = x0 + math.floor(w + 0.5), y0 + math.floor(h + 0.5)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return x0, y0, x1 - x0, y1 - y0


def centre_square(height: int, width: int) -> Box:
    """The largest square box centred in a ``height x width`` image: the crop of ``no_face="center"``."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    """``crop`` at ``size x size``: ``INTER_AREA`` to shrink, ``INTER_LINEAR`` where a side must grow."""
    h, w = crop.shape[:2]
    if (h, w) == (size, size):
        return crop.copy()
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def crop_face(
    image: np.ndarray,
    settings: FaceSettings,
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: LargestFace | None = None,
    source: str = "<image>",
    original_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray | None, str, Box | None]:
    """:func:`preprocess_image` plus the crop box used: ``(face or None, status, box or None)``.

    The box is in ``image`` coordinates, or in the original file's when
    ``original_shape`` says the decoded image was reduced from it (given
    boxes are then mapped onto the reduced image first). ``detector`` is
    anything with ``largest(grey)``; without one a :class:`FaceDetector` is
    built for ``settings`` when detection is needed.
    """
    image = as_uint8_image(image)
    height, width = image.shape[:2]
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    crop_box: Box | None
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
        crop_box, status = centre_square(height, width), "no_face_center"

    x, y, w, h = crop_box
    if settings.colour:
        region = (image[y:y + h, x:x + w] if image.ndim == 3
                  else cv2.cvtColor(grey[y:y + h, x:x + w], cv2.COLOR_GRAY2RGB))
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
    """One decoded image to a ``uint8`` face ``(size, size, C)`` and what was done.

    ``image`` is ``uint8`` grey ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)``.
    A given ``box`` ``(x, y, w, h)`` (AffectNet) is cropped, clipped to the
    image (status ``given_box``). Otherwise, when ``settings.detect`` asks
    for it (see :class:`FaceSettings`), the largest Viola-Jones face is
    cropped (``detected``); failing a face, the ``no_face`` policy gives
    ``(None, "no_face_skipped")``, the centre square (``no_face_center``) or
    :class:`NoFaceError` naming ``source``. Else the whole image is resized
    (``resized``). ``C`` is 1 (grey, ``cv2.COLOR_RGB2GRAY``) or 3 (RGB).
    """
    face, status, _ = crop_face(image, settings, box, needs_detection, detector, source)
    return face, status
