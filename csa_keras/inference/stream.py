"""Live prediction: a camera, a video file or a stream URL, frame by frame, smoothed.

:meth:`Predictor.stream <csa_keras.inference.predictor.Predictor.stream>`
returns a :class:`FrameStream`. Each frame read from ``cv2.VideoCapture`` is
classified at once (one model call per frame, for the lowest latency) and
comes out as a :class:`StreamFrame`: its records, as
:meth:`~csa_keras.inference.predictor.Predictor.predict_paths` gives them,
the class probabilities of each face averaged over the last ``smooth`` frames
(:class:`Smoother`), and the frames per second measured.

Faces are matched across frames by their index (0 = largest): the smoothed
probabilities of face ``i`` are the mean of face ``i`` 's raw ones over the
last ``smooth`` frames that had a face ``i``. A single expression flickers
from frame to frame; a short average is what a live display wants.

The stream ends at the source's end, after ``max_frames`` frames, when it is
closed, or on Ctrl-C: the capture is then released and an annotated video
(``annotate``) is finished with the frames so far, its files moved into
place (:class:`~csa_keras.inference.annotate.Annotator`); a
``KeyboardInterrupt`` is raised again after that, for the caller to stop
too. Any other error drops the annotated video's temporary files. An
``annotate`` folder that is the video file read or holds it is refused
before the capture opens; an annotated video that cannot be written (a name
too long for the file system) is skipped, its reason in each record's
``error``.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from csa_keras.inference.annotate import Annotator, note_skipped_annotation
from csa_keras.inference.inputs import InputFile, VideoError, capture_rate, open_capture, read_frames
from csa_keras.utils.messages import must
from csa_keras.utils.paths import check_outputs

if TYPE_CHECKING:
    from csa_keras.inference.predictor import Predictor

RATE_WINDOW = 30
"""The frames the measured frames per second is averaged over."""


class Smoother:
    """Moving average of each face's class probabilities over the last ``window`` frames (module docstring)."""

    def __init__(self, window: int) -> None:
        self.history: deque[list[np.ndarray | None]] = deque(maxlen=window)

    def update(self, probabilities: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """Add one frame's probabilities per face (``None``: no face there); the smoothed ones, same order."""
        self.history.append([None if p is None else np.asarray(p, dtype=float) for p in probabilities])
        smoothed: list[np.ndarray | None] = []
        for i, current in enumerate(self.history[-1]):
            if current is None:
                smoothed.append(None)
                continue
            rows = [frame[i] for frame in self.history if i < len(frame) and frame[i] is not None]
            smoothed.append(np.mean(rows, axis=0))
        return smoothed


@dataclasses.dataclass(frozen=True)
class StreamFrame:
    """One classified frame of a stream.

    ``records`` are the frame's records as
    :meth:`~csa_keras.inference.predictor.Predictor.predict_paths` gives
    them (raw, this frame only); ``probabilities`` holds, for each record,
    its face's ``{class: probability}`` smoothed over the last frames
    (``None`` for a record without a classified face); ``fps`` is the rate
    frames were read and classified at, over the last :data:`RATE_WINDOW`.
    ``image`` is the decoded RGB frame (reduced to the predictor's
    ``max_side``) and ``original_shape`` the frame's ``(height, width)``
    before that, which the records' boxes are in: what a live window draws
    them on (:mod:`csa_keras.inference.window`); a caller that keeps many
    frames keeps their images too.
    """

    frame: int
    time_s: float | None
    records: list[dict]
    probabilities: list[dict | None]
    fps: float
    image: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    original_shape: tuple[int, int] | None = None

    @property
    def smoothed(self) -> list[dict]:
        """The records with ``probabilities``, ``label`` and ``score`` taken from the smoothed probabilities."""
        records = []
        for record, smoothed in zip(self.records, self.probabilities):
            record = dict(record)
            if smoothed is not None:
                label = max(smoothed, key=smoothed.get)
                record.update(label=label, score=smoothed[label], probabilities=dict(smoothed))
            records.append(record)
        return records


def source_name(source: int | str | os.PathLike) -> str:
    """The ``source`` of a stream's records: ``<camera N>``, the file path or the URL."""
    return f"<camera {source}>" if isinstance(source, int) else str(source)


def source_stem(source: int | str | os.PathLike) -> str:
    """The stem of a stream's annotated files: ``camera0``, the file's stem, the URL's last part or host."""
    if isinstance(source, int):
        return f"camera{source}"
    text = str(source)
    if "://" in text:
        host, _, path = text.split("://", 1)[1].split("?", 1)[0].strip("/").partition("/")
        text = Path(path).stem if path else host.rsplit(":", 1)[0]
    else:
        text = Path(text).stem
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "stream"


def _positive(setting: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(must(setting, "be a positive integer", value))


class FrameStream:
    """The frames of a live source classified one by one: iterate for :class:`StreamFrame` s (module docstring).

    Made by :meth:`Predictor.stream <csa_keras.inference.predictor.Predictor.stream>`;
    the capture is opened here, so a source that cannot be opened is a
    one-line ``ValueError`` at once. Iterate once; use it in a ``with``
    block (or call :meth:`close`) to end it early.
    """

    def __init__(self, predictor: Predictor, source: int | str | os.PathLike, smooth: int = 5, every: int = 1,
                 max_frames: int | None = None, annotate: str | os.PathLike | None = None) -> None:
        if isinstance(source, bool) or not isinstance(source, (int, str, os.PathLike)):
            raise ValueError(must("source", "be a camera index, a video file or a stream URL", source))
        _positive("smooth", smooth)
        _positive("every", every)
        if max_frames is not None:
            _positive("max_frames", max_frames)
        self.predictor, self.source = predictor, source
        self.smooth, self.every, self.max_frames = smooth, every, max_frames
        self.name = source_name(source)
        if annotate is not None and not isinstance(source, int) and os.path.exists(source):
            check_outputs({"annotate": annotate}, {"source": source}, folders=("annotate",))
        self.annotator = None if annotate is None else Annotator(annotate, predictor.class_names, every)
        self.item = InputFile(Path(self.name), "video", source_stem(source))
        try:
            self.capture = open_capture(source)
        except VideoError:
            what = f"camera {source}" if isinstance(source, int) else f"source {source}"
            raise ValueError(f"{what} cannot be opened (no such camera or file, or a format or "
                             "stream OpenCV cannot read)") from None
        rate = capture_rate(self.capture)
        self.rate = None if rate is None else rate / every
        self.frames = 0
        self._closed = False

    def __iter__(self) -> Iterator[StreamFrame]:
        finished = True
        try:
            yield from self._frames()
        except BaseException as error:
            finished = isinstance(error, (KeyboardInterrupt, GeneratorExit))
            raise
        finally:
            self.close(finished)

    def _frames(self) -> Iterator[StreamFrame]:
        predictor = self.predictor
        smoother = Smoother(self.smooth)
        stamps = deque([time.perf_counter()], maxlen=RATE_WINDOW + 1)
        frames = read_frames(self.capture, self.every, predictor.settings.max_side, live=isinstance(self.source, int))
        try:
            for index, seconds, rgb, original in frames:
                records = predictor.records_of(rgb, original, source=self.name, frame=index, time_s=seconds)
                raw = [None if r["status"] != "ok" else [r["probabilities"][n] for n in predictor.class_names]
                       for r in records]
                smoothed = [None if p is None else dict(zip(predictor.class_names, map(float, p)))
                            for p in smoother.update(raw)]
                stamps.append(time.perf_counter())
                frame = StreamFrame(index, seconds, records, smoothed,
                                    (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9), rgb, original)
                if self.annotator is not None and self.annotator.write(self.item, rgb, frame.smoothed, original,
                                                                       self.rate) is None:
                    note_skipped_annotation(records, self.annotator.skipped[str(self.item.path)])
                self.frames += 1
                yield frame
                if self.max_frames is not None and self.frames >= self.max_frames:
                    break
        except VideoError:
            raise ValueError(f"{self.name} yields no frame") from None
        finally:
            frames.close()

    def close(self, finish: bool = True) -> None:
        """Release the capture and end the annotated video: finished (default) or dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.capture.release()
        if self.annotator is not None:
            if finish:
                self.annotator.close()
            else:
                self.annotator.discard()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(kind is None or issubclass(kind, KeyboardInterrupt))
