"""Where the faces of an image are, and one word for what became of it.

Training keeps the largest face of a frame
(:func:`~csa_keras.data.faces.crop.crop_face`); prediction classifies every
face (:class:`~csa_keras.inference.predictor.Predictor`). Both ask
:func:`locate_faces`, so whether an image is searched for faces
(:func:`detects`), what becomes of one without a face (``FaceSettings.no_face``)
and the words that say what happened (:data:`OUTCOMES`) are decided here
and nowhere else.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from csa_keras.data.faces.detect import Box, FaceDetector
from csa_keras.data.faces.settings import AUTO_DETECT_FACTOR, FaceSettings

OUTCOMES = ("given_box", "detected", "whole", "center", "no_face")
"""What became of an image, one word each: the crop of a ``given_box`` (AffectNet's
annotations), the face(s) the cascade ``detected``, the ``whole`` image (a face
crop already), the ``center`` square (no face found, ``no_face="center"``), or
``no_face`` (none found, ``no_face="skip"``: nothing to crop). Training records
it per sample (``PreprocessResult.statuses``, ``data summary``'s counts);
prediction records carry it as ``crop`` (``no_face`` is then the record's
``status``)."""


class NoFaceError(ValueError):
    """Raised with ``no_face="error"`` when the cascade finds no face in an image."""

    def __init__(self, source: str) -> None:
        self.source = str(source)
        super().__init__(f"no face found in {self.source} (no_face='error'; use 'skip' or 'center' to go on)")

    def __reduce__(self):
        return (type(self), (self.source,))


class FaceFinder(Protocol):
    """Anything that finds every face box in a grey image, as :class:`FaceDetector` does."""

    def detect(self, grey: np.ndarray) -> list[Box]: ...


def detects(settings: FaceSettings, height: int, width: int, needs_detection: bool = False) -> bool:
    """Whether a ``height x width`` image is searched for faces under ``settings.detect``.

    ``always`` and ``never`` say so; ``auto`` searches frames (a catalogue
    whose format ``needs_detection``) and images whose longer side exceeds
    ``AUTO_DETECT_FACTOR x settings.size``, and takes smaller ones as face
    crops already.
    """
    return settings.detect == "always" or (
        settings.detect == "auto"
        and (needs_detection or max(height, width) > AUTO_DETECT_FACTOR * settings.size)
    )


def center_box(height: int, width: int) -> Box:
    """The crop of ``no_face="center"``: the largest square centred in a ``height x width`` image."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


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


def locate_faces(
    grey: np.ndarray,
    settings: FaceSettings,
    box: Sequence[float] | None = None,
    needs_detection: bool = False,
    detector: FaceFinder | None = None,
    every: bool = False,
    source: str = "<image>",
) -> tuple[str, list[Box]]:
    """The crop boxes of the faces in ``grey`` and what became of the image: ``(outcome, boxes)``.

    ``outcome`` is a word of :data:`OUTCOMES`; ``boxes`` are ``(x, y, w, h)``
    in ``grey``'s pixels, largest first. A given ``box`` (in those pixels) and
    detected faces are grown by ``settings.margin`` about their centres and
    clipped to the image; the ``whole`` image and the ``center`` square are
    taken as they are. Detection (when :func:`detects` says so) returns the
    largest face, or every face with ``every=True``. A given box with
    nothing left inside the image, or a search that finds nothing, follows
    ``settings.no_face``: ``("no_face", [])``, ``("center", [square])``, or
    :class:`NoFaceError` naming ``source``. ``detector`` is anything with
    ``detect(grey)``; without one a :class:`FaceDetector` is built for
    ``settings`` when a search is needed.
    """
    height, width = grey.shape[:2]
    if box is not None:
        clipped = _clip(_enlarge(box, settings.margin), height, width)
        outcome, boxes = "given_box", [] if clipped is None else [clipped]
    elif detects(settings, height, width, needs_detection):
        detector = detector if detector is not None else FaceDetector.from_settings(settings)
        found = sorted(detector.detect(grey), key=lambda b: b[2] * b[3], reverse=True)
        clipped = (_clip(_enlarge(b, settings.margin), height, width) for b in found[:None if every else 1])
        outcome, boxes = "detected", [b for b in clipped if b is not None]
    else:
        return "whole", [(0, 0, width, height)]
    if boxes:
        return outcome, boxes
    if settings.no_face == "error":
        raise NoFaceError(source)
    if settings.no_face == "skip":
        return "no_face", []
    return "center", [center_box(height, width)]
