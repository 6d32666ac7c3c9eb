"""Prediction records drawn on their images, and the folder of annotated copies.

:func:`draw_records` draws each classified face's box and ``label score``
(and marks an image without a face); :class:`Annotator` writes such copies
under one folder, keeping each input's relative folder and giving each copy
a name of its own (``<stem>_annotated<suffix>``): a drawn copy of every
image, and of every video an annotated video with its timeline
(:mod:`csa_keras.inference.video`), each file written under a temporary name
and renamed. A copy that cannot be written (a name too long for the file
system) is skipped with its reason, and the other inputs go on.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from csa_keras.inference.inputs import InputFile, kind_of, video_rate
from csa_keras.inference.video import VIDEO_FORMATS, VideoRecorder, naming, refused
from csa_keras.utils.files import commit, temporary_name, writable_folder
from csa_keras.utils.paths import name_too_long

ANNOTATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image formats an annotated copy keeps; any other image is written as ``.png``."""

ANNOTATED = "_annotated"
"""Added to an input's stem to name its annotated copy, so that a copy never takes an input's name."""

ANNOTATION_SKIPPED = "annotated copy not written"
"""How the ``error`` of a record whose annotated copy could not be written begins."""


def note_skipped_annotation(records: Sequence[dict], reason: str) -> None:
    """Say in each record's ``error`` why the annotated copy of its image or frame was not written."""
    for record in records:
        record["error"] = f"{ANNOTATION_SKIPPED}: {reason}"


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
    """Writes annotated copies under one folder, keeping each input's relative folder.

    An image ``photo.jpg`` gets a drawn copy ``photo_annotated.jpg`` (``.png``
    for a format :data:`ANNOTATION_SUFFIXES` does not keep). The sampled
    frames of a video go, drawn, into one annotated video with its timeline
    (:class:`~csa_keras.inference.video.VideoRecorder`:
    ``<video>_annotated.mp4``, ``<video>_timeline.csv`` and ``.png``), which
    is moved into place when the video ends: when a frame of another input
    arrives, or at :meth:`close`; :meth:`discard` drops a video that did not
    end. Two inputs of the same name (from different folders) get ``_2``,
    ``_3``... rather than overwriting each other's copy, names compared
    without case so that a case-blind file system keeps both. The folder is
    created at once (:func:`annotation_folder`); that it holds no input is the
    caller's check (:func:`csa_keras.utils.paths.check_outputs`). As a
    context manager, it closes the video being written when the block ends
    normally or on Ctrl-C (the frames so far kept, as the records are) and
    drops it on any other exception.

    A copy that cannot be written (its name too long for the file system,
    an image OpenCV cannot encode) is skipped: :meth:`write` returns
    ``None``, the reason goes to :attr:`skipped` under the input's path, and
    a video whose first frame failed is not tried again frame after frame.
    A write the machine refuses (a full disk, a folder vanished or made
    read-only: :func:`~csa_keras.inference.video.refused`) is raised
    instead, as an ``OSError`` naming the file, with the partial files
    removed: every later copy would fail the same way.

    Args:
        folder: where the copies go.
        class_names: the model's classes, the timeline's ``p_<class>`` columns.
        every: the sampling of video frames, which divides a video file's
            frame rate to give the annotated video's.
    """

    def __init__(self, folder: str | os.PathLike, class_names: Sequence[str] = (), every: int = 1) -> None:
        self.folder = annotation_folder(folder)
        self.class_names = list(class_names)
        self.every = every
        self.used: set[str] = set()
        self.skipped: dict[str, str] = {}
        self._video: tuple[InputFile, VideoRecorder] | None = None

    def _unique(self, name: Path, tail: str = "") -> Path:
        """``folder / name``, or with ``_2``, ``_3``... added to its stem: never a path given before, in any case.

        ``tail`` is added after the number (``photo_2_annotated.jpg``).
        """
        stem, suffix = name.stem if tail else name.name, name.suffix if tail else ""
        path, n = self.folder / name.with_name(f"{stem}{tail}{suffix}"), 1
        while str(path).casefold() in self.used:
            n += 1
            path = self.folder / name.with_name(f"{stem}_{n}{tail}{suffix}")
        self.used.add(str(path).casefold())
        return path

    def target(self, item: InputFile) -> Path:
        """Where the copy of the image ``item`` goes: ``<stem>_annotated<suffix>`` in its relative folder."""
        name = Path(item.name)
        if name.suffix.lower() not in ANNOTATION_SUFFIXES:
            name = name.with_suffix(".png")
        return self._unique(name, ANNOTATED)

    def recorder(self, item: InputFile, rate: float | None = None) -> VideoRecorder:
        """The recorder of the video ``item``, started on its first frame (ending the video before it).

        ``rate``: frames per second of the sampled frames; by default the
        file's own over ``every``.
        """
        if self._video is not None and self._video[0] is item:
            return self._video[1]
        self.close()
        if rate is None:
            source_rate = video_rate(item.path)
            rate = None if source_rate is None else source_rate / self.every
        name = Path(item.name)
        stem = name.with_suffix("") if kind_of(name) == "video" else name
        base = self._unique(stem)
        longest = base.with_name(f"{base.name}{ANNOTATED}{max((s for _, s in VIDEO_FORMATS), key=len)}")
        error = name_too_long(temporary_name(longest))
        if error is not None:
            raise error
        recorder = VideoRecorder(base, self.class_names, rate)
        self._video = (item, recorder)
        return recorder

    def write(self, item: InputFile, image: np.ndarray, records: Sequence[dict],
              original_shape: tuple[int, int] | None = None, rate: float | None = None) -> Path | None:
        """Draw ``records`` on ``image`` (an RGB decode of ``item`` or of one of its frames) and write it.

        Returns the image copy, or the (final) path of the video's timeline
        CSV for a video frame; ``None`` when the copy of ``item`` cannot be
        written, with the reason in :attr:`skipped` (class docstring).
        """
        key = str(item.path)
        if key in self.skipped:
            return None
        video = records[0]["frame"] is not None
        if self._video is not None and self._video[0] is not item:
            self.close()
        try:
            canvas = draw_records(image, records, original_shape)
            if video:
                recorder = self.recorder(item, rate)
                recorder.write(canvas, records)
                return recorder.csv_path
            return self._write_image(self.target(item), canvas)
        except OSError as error:
            if self._video is not None:
                self.discard()
            if refused(error):
                raise
            self.skipped[key] = error.strerror or str(error)
            return None

    @staticmethod
    def _write_image(path: Path, canvas: np.ndarray) -> Path:
        """``canvas`` encoded in ``path`` 's format, written under a temporary name and renamed."""
        temporary = temporary_name(path)
        error = name_too_long(temporary)
        if error is not None:
            raise error
        encoded, data = cv2.imencode(path.suffix, canvas)
        if not encoded:
            raise OSError(f"cannot encode the annotated image as {path.suffix}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data.tobytes())
            return commit(temporary, path)
        except OSError as error:
            raise naming(error, path) from None
        finally:
            temporary.unlink(missing_ok=True)

    def close(self) -> list[Path]:
        """End the video being written: its files moved into place; the paths written."""
        video, self._video = self._video, None
        return [] if video is None else video[1].finish()

    def discard(self) -> None:
        """Drop the video being written (it did not end): its temporary files removed."""
        video, self._video = self._video, None
        if video is not None:
            video[1].discard()

    def __enter__(self) -> Annotator:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """The video being written is closed when the block ends normally or on Ctrl-C (or when the
        generator it serves is closed), dropped on any other exception."""
        if kind is None:
            self.close()
        elif issubclass(kind, (KeyboardInterrupt, GeneratorExit)):
            with contextlib.suppress(OSError):  # the interruption is what the caller reports
                self.close()
        else:
            self.discard()
