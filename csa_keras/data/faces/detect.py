"""Viola-Jones face detection (CSA paper §3.1) with OpenCV's frontal-face Haar cascade.

:class:`FaceDetector` finds face boxes in a grey image; :class:`LazyFaceDetector`
builds one only when a face is first searched for, so preprocessing runs that
never detect (face crops, given boxes) never load the cascade. OpenCV 5
ships no Haar cascades: :class:`FaceDetectorError` says so.

The smallest face searched for, ``min_size``, sets the cost. The cascade
slides a 24x24 window over a pyramid of the image shrunk by ``scale_factor``
step by step, and almost all the work is in the first, largest levels, which
only matter for faces near the window's size. A ``min_size`` above the
window therefore runs the cascade on a copy of the image reduced by
``window / min_size`` (``INTER_AREA``), with the window as the smallest size,
and scales the boxes back: the same search for faces of at least
``min_size`` pixels, at a fraction of the cost (``min_size=48`` on a 640x480
photograph: a quarter of the pixels in every level, about a third of the
time). The boxes are those of a search at another sampling of the image, not
the full-resolution search's to the pixel: on the benchmark photographs they
overlap them by an IoU of about 0.93 (searching again at full resolution
around each face gave no closer boxes: the cascade's result depends on where
the image's pyramid samples, which only the whole image's search
reproduces). At the default ``min_size`` of 24 nothing is reduced.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from csa_keras.data.faces.settings import FaceSettings

CASCADE_FILE = "haarcascade_frontalface_default.xml"

Box = tuple[int, int, int, int]
"""A face box ``(x, y, w, h)`` in pixels."""


class FaceDetectorError(RuntimeError):
    """The Viola-Jones cascade cannot be loaded (OpenCV 5 or a broken install)."""


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
    """Viola-Jones face detection with OpenCV's frontal-face Haar cascade.

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
        self.window = int(min(classifier.getOriginalWindowSize()))
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    @classmethod
    def from_settings(cls, settings: FaceSettings) -> FaceDetector:
        """The detector with the cascade parameters of ``settings``."""
        return cls(settings.scale_factor, settings.min_neighbors, settings.min_size)

    def detect(self, grey: np.ndarray) -> list[Box]:
        """Every face box in ``grey``, a ``uint8`` ``(H, W)`` (or ``(H, W, 1)``) image, in its pixels.

        With ``min_size`` above the cascade's window the search runs on a
        reduced copy (module docstring).
        """
        grey = np.asarray(grey)
        if grey.ndim == 3 and grey.shape[2] == 1:
            grey = grey[..., 0]
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"grey must be a grey uint8 (H, W) image. "
                             f"Received: grey with dtype={grey.dtype} and shape={grey.shape}")
        scale = min(1.0, self.window / self.min_size)
        if scale == 1.0:
            return [tuple(int(v) for v in box) for box in self._search(grey, self.min_size)]
        height, width = grey.shape
        small = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        return [_scaled_back(box, 1.0 / scale, height, width) for box in self._search(small, self.window)]

    def _search(self, grey: np.ndarray, smallest: int):
        return self.classifier.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(smallest, smallest),
        )

    def largest(self, grey: np.ndarray) -> Box | None:
        """The face box of largest area in ``grey``, or ``None`` when there is no face."""
        boxes = self.detect(grey)
        if not boxes:
            return None
        return max(boxes, key=lambda box: box[2] * box[3])


def _scaled_back(box, factor: float, height: int, width: int) -> Box:
    """A box found on a copy reduced by ``1 / factor``, in the full image's pixels (clipped to it)."""
    x, y, w, h = (float(v) * factor for v in box)
    x0, y0 = min(width - 1, round(x)), min(height - 1, round(y))
    return x0, y0, max(1, min(width - x0, round(w))), max(1, min(height - y0, round(h)))


class LazyFaceDetector:
    """A :class:`FaceDetector` for ``settings``, built the first time a face is searched for."""

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self.detector: FaceDetector | None = None

    def detect(self, grey: np.ndarray) -> list[Box]:
        """:meth:`FaceDetector.detect`, loading the cascade on the first call."""
        if self.detector is None:
            self.detector = FaceDetector.from_settings(self.settings)
        return self.detector.detect(grey)
