"""What prediction reads: files and folders expanded to inputs, videos as sampled frames.

:func:`collect_inputs` turns the paths a caller gives into
:class:`InputFile` s and refuses, before any work, a missing input or a
folder with nothing to predict on. :func:`video_frames` reads a video file
with OpenCV, decoding only the frames that are kept; :func:`open_capture` and
:func:`read_frames` do the same for a camera or a stream URL.
:func:`error_reason` says in one line why an input could not be read, and
:func:`names_a_model` whether a path given as an input is a model instead.

A FIFO, device or socket among the inputs, named or found in a folder, is
never opened: OpenCV and Pillow would wait on a FIFO for a writer forever.
It becomes an ``error`` record (``not a regular file (a FIFO)``) like any
unreadable file. A live source (:func:`open_capture`) may be a FIFO.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from csa_keras.data.faces import IMAGE_EXTENSIONS, ImageDecodeError, reduce_image
from csa_keras.utils.paths import special_file

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
"""Files read frame by frame with ``cv2.VideoCapture``."""


def names_a_model(argument: str, runtime: str = "keras") -> bool:
    """Whether an input is a model rather than something to predict on: a ``.keras`` or ``.tflite``
    path, or a folder holding a task's model file (on the ``litert`` runtime, which loads no task:
    any ``.keras`` or ``.tflite`` file)."""
    path = Path(argument)
    if path.suffix.lower() in (".keras", ".tflite"):
        return True
    if runtime == "litert":
        return path.is_dir() and (any(path.glob("*.keras")) or any(path.glob("*.tflite")))
    from csa_keras.tasks import all_tasks

    return path.is_dir() and any((path / name).is_file() for task in all_tasks().values()
                                 for name in (task.model_file, *task.run_files))


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One file to predict on: its path, ``"image"`` or ``"video"``, and its name among annotated copies."""

    path: Path
    kind: str
    name: str


class VideoError(Exception):
    """A video that cannot be opened or yields no frame; the message is the reason, one line."""


def error_reason(error: BaseException) -> str:
    """Why a file could not be used, in one line for an ``"error"`` record."""
    if isinstance(error, ImageDecodeError):
        reason = error.reason.replace("_", " ")
        return f"{reason} ({error.detail})" if error.detail else reason
    if isinstance(error, VideoError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def kind_of(path: str | os.PathLike) -> str:
    """``"video"`` for a file with a video extension, else ``"image"``."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def _folder_inputs(raw: str | os.PathLike, path: Path) -> list[InputFile]:
    """The images and videos under a folder, recursively and sorted, hidden entries left out."""
    root_name = path.name or path.resolve().name or "input"
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                found.append(Path(folder) / name)
    if not found:
        raise ValueError(f"input folder {raw} holds no image or video files")
    return [InputFile(file, kind_of(file), str(Path(root_name) / file.relative_to(path))) for file in sorted(found)]


def collect_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike | InputFile]) -> list[InputFile]:
    """Expand files and folders (recursively, hidden entries left out) into :class:`InputFile` s.

    Inside a folder only image and video extensions count, in sorted order;
    a file named directly is tried whatever its extension (an unreadable one,
    or a FIFO, device or socket, becomes an ``"error"`` record). A missing
    input or a folder with nothing to predict on is a ``ValueError``, raised
    before any prediction.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items: list[InputFile] = []
    for raw in inputs:
        if isinstance(raw, InputFile):
            items.append(raw)
            continue
        path = Path(raw)
        if not path.exists():
            raise ValueError(f"input {raw} does not exist")
        if path.is_dir():
            items += _folder_inputs(raw, path)
        else:
            items.append(InputFile(path, kind_of(path), path.name))
    if not items:
        raise ValueError("no inputs given")
    return items


def open_capture(source: int | str | os.PathLike) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` of a camera index, a video file or a stream URL.

    A camera keeps a one-frame buffer, so that a classifier slower than the
    camera sees the newest frame rather than a queue of old ones. Raises
    :class:`VideoError` when OpenCV cannot open the source.
    """
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    if not capture.isOpened():
        capture.release()
        raise VideoError("cannot open the video (not a format OpenCV can read)")
    if isinstance(source, int):
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return capture


def capture_rate(capture: cv2.VideoCapture) -> float | None:
    """The frames per second a capture reports, ``None`` when it reports none."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if fps and math.isfinite(fps) and fps > 0 else None


def read_frames(capture: cv2.VideoCapture, every: int, max_side: int | None,
                live: bool = False) -> Iterator[tuple[int, float | None, np.ndarray, tuple[int, int]]]:
    """``(index, seconds, RGB frame reduced to max_side, original (h, w))`` of every ``every``-th frame.

    Skipped frames are only grabbed, not decoded. ``seconds`` is the frame's
    place in the video (index over the reported rate, ``None`` without one),
    or for a ``live`` source (a camera) the wall-clock seconds since its
    first frame. The capture is left open. Raises :class:`VideoError` when
    not a single frame can be read.
    """
    fps = capture_rate(capture)
    index, start = 0, None
    while True:
        if index % every == 0:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            now = time.perf_counter()
            start = now if start is None else start
            rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB)
            seconds = (round(now - start, 3) if live else None if fps is None else round(index / fps, 3))
            yield index, seconds, reduce_image(rgb, max_side), rgb.shape[:2]
        elif not capture.grab():
            break
        index += 1
    if index == 0:
        raise VideoError("no frame could be read from the video")


def _refuse_special(path: str | os.PathLike) -> None:
    """A :class:`VideoError` for a video input that is a special file, found with ``os.stat`` before any open."""
    kind = special_file(path)
    if kind is not None:
        raise VideoError(f"not a regular file ({kind})")


def video_frames(path: str | os.PathLike, every: int,
                 max_side: int | None) -> Iterator[tuple[int, float | None, np.ndarray, tuple[int, int]]]:
    """The frames of :func:`read_frames` of a video file, opened and released here.

    Raises :class:`VideoError` when the file is a special file, does not
    open as a video or yields no frame.
    """
    _refuse_special(path)
    capture = open_capture(path)
    try:
        yield from read_frames(capture, every, max_side)
    finally:
        capture.release()


def video_rate(path: str | os.PathLike) -> float | None:
    """The frames per second a video file reports, ``None`` when it reports none, does not open or is a special file."""
    if special_file(path) is not None:
        return None
    capture = cv2.VideoCapture(str(path))
    try:
        return capture_rate(capture) if capture.isOpened() else None
    finally:
        capture.release()


def frame_estimate(path: str | os.PathLike, every: int) -> int:
    """How many frames :func:`video_frames` will yield, from the container's frame count (at least 1)."""
    if special_file(path) is not None:
        return 1
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return max(1, -(-count // every)) if count > 0 else 1
