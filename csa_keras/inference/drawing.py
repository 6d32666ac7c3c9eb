"""Prediction records drawn on their images, and the folder of annotated copies.

:func:`draw_records` draws each classified face's box and ``label score``
(and marks an image without a face); :class:`Annotator` writes such copies
of every image and sampled video frame under one folder, keeping each
input's relative name, each file written under a temporary name and renamed.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from csa_keras.inference.inputs import InputFile
from csa_keras.utils.files import temporary_name, writable_folder

ANNOTATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image formats an annotated copy keeps; any other image is written as ``.png``."""

_GREEN, _RED, _BLACK = (0, 200, 0), (0, 0, 230), (0, 0, 0)


def draw_records(image: np.ndarray, records: Sequence[dict],
                 original_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR copy of an RGB ``image`` with each face's box and ``label score`` drawn.

    Boxes in records are in original pixels; ``original_shape`` maps them onto
    a decoded image that was reduced. A ``no_face`` record is marked
    ``no face`` in the top-left corner.
    """
    image = np.asarray(image)
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    height, width = canvas.shape[:2]
    sy, sx = (1.0, 1.0) if original_shape is None else (height / original_shape[0], width / original_shape[1])
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(2 * scale))
    for record in records:
        if record["status"] == "ok":
            x, y, w, h = record["box"]
            x0, y0 = round(x * sx), round(y * sy)
            x1, y1 = round((x + w) * sx) - 1, round((y + h) * sy) - 1
            cv2.rectangle(canvas, (x0, y0), (x1, y1), _GREEN, thickness)
            _draw_label(canvas, f"{record['label']} {record['score']:.2f}", x0, y0, _GREEN, scale, thickness)
        elif record["status"] == "no_face":
            _draw_label(canvas, "no face", 0, 0, _RED, scale, thickness)
    return canvas


def _draw_label(canvas: np.ndarray, text: str, x: int, y: int, colour, scale: float, thickness: int) -> None:
    """``text`` on a filled band above ``(x, y)``, or below it where the top edge is too close."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    band = th + baseline + 4
    top = y - band if y - band >= 0 else y
    cv2.rectangle(canvas, (x, top), (x + tw + 4, top + band), colour, -1)
    cv2.putText(canvas, text, (x + 2, top + th + 2), font, scale, _BLACK, thickness, cv2.LINE_AA)


def annotation_folder(annotate: str | os.PathLike) -> Path:
    """The folder of annotated copies, created; a one-line ``ValueError`` if it cannot be one."""
    return writable_folder(annotate, "annotate")


class Annotator:
    """Writes annotated copies under one folder, keeping each input's relative name.

    A video frame becomes ``<video>_frame000120.jpg``; two inputs with the
    same name get ``_2``, ``_3``... rather than overwriting each other. The
    folder is created at once (:func:`annotation_folder`).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = annotation_folder(folder)
        self.used: set[Path] = set()

    def target(self, item: InputFile, frame: int | None) -> Path:
        """Where the copy of ``item`` (or of its ``frame``) goes; never a path given before."""
        name = Path(item.name)
        if frame is not None:
            name = name.with_name(f"{name.stem}_frame{frame:06d}.jpg")
        elif name.suffix.lower() not in ANNOTATION_SUFFIXES:
            name = name.with_suffix(".png")
        path, n = self.folder / name, 1
        while path in self.used:
            n += 1
            path = self.folder / name.with_name(f"{name.stem}_{n}{name.suffix}")
        self.used.add(path)
        return path

    def write(self, item: InputFile, image: np.ndarray, records: Sequence[dict],
              original_shape: tuple[int, int] | None = None) -> Path:
        """Draw ``records`` on ``image`` (an RGB decode of ``item``) and write the copy."""
        path = self.target(item, records[0]["frame"])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_name(path)
        if not cv2.imwrite(str(temporary), draw_records(image, records, original_shape)):
            temporary.unlink(missing_ok=True)
            raise OSError(f"cannot write the annotated image {path}")
        os.replace(temporary, path)
        return path
