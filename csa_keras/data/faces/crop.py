"""One decoded image to one face: the crop geometry.

The CSA paper (§3.1) crops the Viola-Jones face and resizes it to 48x48.
:func:`crop_face` asks :func:`~csa_keras.data.faces.locate.locate_faces` for
the box (a given one, the largest detected face, the whole image or the
no-face policy's answer) and :func:`face_in_box` cuts it out, converts it to
grey (or keeps RGB for the Voting ResNet) and resizes it to ``size x size``
with ``cv2.INTER_AREA`` (``cv2.INTER_LINEAR`` when a crop is smaller than the
output and must be enlarged). Prediction cuts every face it finds with the
same :func:`face_in_box`.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from csa_keras.data.faces.decode import as_uint8_image
from csa_keras.data.faces.detect import Box
from csa_keras.data.faces.locate import FaceFinder, locate_faces
from csa_keras.data.faces.settings import FaceSettings


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    """``crop`` at ``size x size``: ``INTER_AREA`` to shrink, ``INTER_LINEAR`` where a side must grow."""
    h, w = crop.shape[:2]
    if (h, w) == (size, size):
        return crop.copy()
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _grey(image: np.ndarray) -> np.ndarray:
    """``image`` (``uint8`` grey or RGB) in grey, ``cv2.COLOR_RGB2GRAY``."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def face_in_box(image: np.ndarray, box: Box, settings: FaceSettings, grey: np.ndarray | None = None) -> np.ndarray:
    """The face ``(size, size, C)`` ``uint8`` in ``box`` of ``image``, grey (``C = 1``) or RGB (``C = 3``).

    ``image`` is ``uint8`` grey ``(H, W)`` or RGB ``(H, W, 3)``; ``grey``, its
    grey copy where the caller has one already; ``box`` lies inside it (as
    :func:`~csa_keras.data.faces.locate.locate_faces` returns them).
    """
    x, y, w, h = box
    if settings.colour:
        region = (image[y:y + h, x:x + w] if image.ndim == 3
                  else cv2.cvtColor(image[y:y + h, x:x + w], cv2.COLOR_GRAY2RGB))
        face = _resize(region, settings.size)
    else:
        grey = _grey(image) if grey is None else grey
        face = _resize(grey[y:y + h, x:x + w], settings.size)[..., None]
    return np.ascontiguousarray(face, dtype=np.uint8)


def crop_face(
    image: np.ndarray,
    settings: FaceSettings,
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: FaceFinder | None = None,
    source: str = "<image>",
    original_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray | None, str, Box | None]:
    """:func:`preprocess_image` plus the crop box used: ``(face or None, outcome, box or None)``.

    The box is in ``image`` coordinates, or in the original file's when
    ``original_shape`` says the decoded image was reduced from it (given
    boxes are then mapped onto the reduced image first). ``detector`` is
    anything with ``detect(grey)``; without one a
    :class:`~csa_keras.data.faces.detect.FaceDetector` is built for
    ``settings`` when detection is needed.
    """
    image = as_uint8_image(image)
    height, width = image.shape[:2]
    grey = _grey(image)
    reduced = original_shape is not None and tuple(original_shape) != (height, width)
    if box is not None and reduced:
        sy, sx = height / original_shape[0], width / original_shape[1]
        box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    outcome, boxes = locate_faces(grey, settings, box, needs_detection, detector, source=source)
    if not boxes:
        return None, outcome, None
    face = face_in_box(image, boxes[0], settings, grey)
    x, y, w, h = boxes[0]
    if reduced:
        sy, sx = original_shape[0] / height, original_shape[1] / width
        return face, outcome, (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    return face, outcome, (x, y, w, h)


def preprocess_image(
    image: np.ndarray,
    settings: FaceSettings = FaceSettings(),
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: FaceFinder | None = None,
    source: str = "<image>",
) -> tuple[np.ndarray | None, str]:
    """One decoded image to a ``uint8`` face ``(size, size, C)`` and what became of it.

    ``image`` is ``uint8`` grey ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)``.
    A given ``box`` ``(x, y, w, h)`` (AffectNet) is cropped, clipped to the
    image (``given_box``). Otherwise, when ``settings.detect`` asks for it
    (:func:`~csa_keras.data.faces.locate.detects`), the largest Viola-Jones
    face is cropped (``detected``); failing a face, the ``no_face`` policy
    gives ``(None, "no_face")``, the centre square (``center``) or
    :class:`~csa_keras.data.faces.locate.NoFaceError` naming ``source``. Else
    the whole image is resized (``whole``). The words are those of
    :data:`~csa_keras.data.faces.locate.OUTCOMES`. ``C`` is 1 (grey,
    ``cv2.COLOR_RGB2GRAY``) or 3 (RGB).
    """
    face, outcome, _ = crop_face(image, settings, box, needs_detection, detector, source)
    return face, outcome
