"""An annotated video and its per-face timeline, written as the frames come.

A :class:`VideoRecorder` takes the sampled frames of one video (or live
source), already drawn, with their prediction records, and writes three
files beside each other:

``<stem>_annotated.mp4``
    the drawn frames, MPEG-4 (``mp4v``) where this OpenCV can write it, else
    Motion-JPEG ``<stem>_annotated.avi`` (:data:`VIDEO_FORMATS`, tried in
    order when the first frame arrives). It plays at the sampled frames'
    rate: the source's over ``every``, or 10 frames a second for a source
    that reports none.
``<stem>_timeline.csv``
    one row per sampled frame and face: ``frame, time_s, face, label,
    score`` and one ``p_<class>`` per class; a frame without a face has one
    row with only ``frame`` and ``time_s``.
``<stem>_timeline.png``
    the class probabilities of face 0 over time, one line per class, with a
    gap where the frame has no face 0; drawn by Matplotlib, so left out where
    it is not installed (the light install without the ``train`` extra).

Video and CSV are written under temporary names as the frames arrive and
renamed into place by :meth:`VideoRecorder.finish`, once the video has
ended, with the PNG; :meth:`VideoRecorder.discard` removes them instead. A
run killed half-way leaves no half file under the final names.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from csa_keras.utils.files import save_figure, temporary_name

VIDEO_FORMATS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
"""``(fourcc, suffix)`` pairs tried in order for the annotated video: the first OpenCV opens is used."""

DEFAULT_RATE = 10.0
"""Frames per second of an annotated video whose source reports no rate."""

TIMELINE_KEYS = ("frame", "time_s", "face", "label", "score")
"""The timeline CSV's columns before one ``p_<class>`` per class."""


def open_video_writer(base: Path, rate: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """A ``cv2.VideoWriter`` at the temporary name of ``base`` + the first suffix of :data:`VIDEO_FORMATS` that opens.

    ``size`` is ``(width, height)``. Returns the writer and the final path
    (``.mp4`` or ``.avi``); an ``OSError`` when no format opens.
    """
    for fourcc, suffix in VIDEO_FORMATS:
        path = base.with_name(base.name + suffix)
        temporary = temporary_name(path)
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*fourcc), rate, size)
        if writer.isOpened():
            return writer, path
        writer.release()
        temporary.unlink(missing_ok=True)
    raise OSError(f"cannot write the annotated video {base.name}: this OpenCV writes none of "
                  f"{', '.join(f for f, _ in VIDEO_FORMATS)}")


def timeline_rows(records: Sequence[dict], class_names: Sequence[str]) -> list[list]:
    """The timeline CSV rows of one frame's records (module docstring), ``""`` for missing values."""
    rows = []
    for record in records:
        probabilities = record["probabilities"] or {}
        row = [record["frame"], record["time_s"], record["face"], record["label"],
               None if record["score"] is None else round(float(record["score"]), 6),
               *(None if name not in probabilities else round(float(probabilities[name]), 6)
                 for name in class_names)]
        rows.append(["" if value is None else value for value in row])
    return rows


def plot_timeline(times: Sequence[float], probabilities: np.ndarray, class_names: Sequence[str],
                  path: Path, title: str, unit: str = "time (s)") -> Path:
    """A PNG of ``probabilities`` ``(T, K)`` against ``times`` (``T >= 1``), one line per class; NaN rows are gaps."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    marker = "." if len(times) < 50 else None
    for k, name in enumerate(class_names):
        ax.plot(times, probabilities[:, k], label=name, linewidth=1.2, marker=marker)
    ax.set(xlabel=unit, ylabel="probability", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


class VideoRecorder:
    """The annotated video and timeline of one source, under ``<base>_...`` (module docstring).

    Args:
        base: the folder and stem of the files (``annotated/clip``).
        class_names: the model's classes, one ``p_<class>`` column each.
        rate: frames per second of the sampled frames; ``None`` for
            :data:`DEFAULT_RATE`.
    """

    def __init__(self, base: str | os.PathLike, class_names: Sequence[str], rate: float | None = None) -> None:
        self.base = Path(base)
        self.class_names = list(class_names)
        self.rate = float(rate) if rate and rate > 0 else DEFAULT_RATE
        self.video_path: Path | None = None
        self.csv_path = self.base.with_name(f"{self.base.name}_timeline.csv")
        self.png_path = self.base.with_name(f"{self.base.name}_timeline.png")
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._csv_file = None
        self._csv = None
        self._indices: list[int] = []
        self._times: list[float | None] = []
        self._face0: list[list[float]] = []

    def write(self, canvas: np.ndarray, records: Sequence[dict]) -> None:
        """Add one drawn BGR frame and its records (all of one frame, in face order)."""
        if self._writer is None:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            self._size = (canvas.shape[1], canvas.shape[0])
            self._writer, self.video_path = open_video_writer(self.base.with_name(f"{self.base.name}_annotated"),
                                                              self.rate, self._size)
            self._csv_file = temporary_name(self.csv_path).open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._csv_file, lineterminator="\n")
            self._csv.writerow([*TIMELINE_KEYS, *(f"p_{name}" for name in self.class_names)])
        if (canvas.shape[1], canvas.shape[0]) != self._size:
            canvas = cv2.resize(canvas, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(canvas)
        self._csv.writerows(timeline_rows(records, self.class_names))
        self._track(records)

    def _track(self, records: Sequence[dict]) -> None:
        """Keep the frame's index, time and face 0's probabilities (NaN without one) for the plot."""
        first = records[0]
        self._indices.append(first["frame"])
        self._times.append(first["time_s"])
        if first["face"] == 0 and first["probabilities"]:
            self._face0.append([first["probabilities"][name] for name in self.class_names])
        else:
            self._face0.append([np.nan] * len(self.class_names))

    @property
    def frames(self) -> int:
        """How many frames have been written."""
        return len(self._indices)

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._csv_file is not None:
            self._csv_file.close()

    def finish(self) -> list[Path]:
        """Close the video and move the three files into place (the PNG where Matplotlib is installed);
        the paths written (none without a frame)."""
        self._release()
        if self.video_path is None:
            return []
        os.replace(temporary_name(self.video_path), self.video_path)
        os.replace(temporary_name(self.csv_path), self.csv_path)
        if importlib.util.find_spec("matplotlib") is None:
            return [self.video_path, self.csv_path]
        timed = all(t is not None for t in self._times)
        plot_timeline(self._times if timed else self._indices, np.array(self._face0, dtype=float),
                      self.class_names, self.png_path, f"{self.base.name}: face 0",
                      "time (s)" if timed else "frame")
        return [self.video_path, self.csv_path, self.png_path]

    def discard(self) -> None:
        """Close and remove the temporary files: the video did not end."""
        self._release()
        for path in (self.video_path, self.csv_path):
            if path is not None:
                temporary_name(path).unlink(missing_ok=True)
