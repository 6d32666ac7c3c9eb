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
flushed to disk and renamed into place by :meth:`VideoRecorder.finish`, once
the video has ended, with the PNG; :meth:`VideoRecorder.discard` removes
them instead. A run killed half-way leaves no half file under the final
names, and a recorder that wrote no frame leaves no file at all.

OpenCV's video writer says nothing when a write fails, so the recorder
checks before each frame that its folder is still there with room for the
frame uncompressed; a full disk, a folder that vanished or became read-only
is an ``OSError`` naming the file being written (:func:`refused`), after
which the temporary files are removed.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from csa_keras.utils.files import commit, save_figure, temporary_name

VIDEO_FORMATS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
"""``(fourcc, suffix)`` pairs tried in order for the annotated video: the first OpenCV opens is used."""

DEFAULT_RATE = 10.0
"""Frames per second of an annotated video whose source reports no rate."""

TIMELINE_KEYS = ("frame", "time_s", "face", "label", "score")
"""The timeline CSV's columns before one ``p_<class>`` per class."""


REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                     errno.EIO, errno.EFBIG})
"""The ``errno`` of a write the machine refused (a full disk, a read-only or vanished folder):
such a failure ends the command, where a copy that cannot be made (a name too long) is skipped."""


def refused(error: OSError) -> bool:
    """Whether ``error`` is a write the machine refused (:data:`REFUSED`)."""
    return error.errno in REFUSED


def naming(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` (the file a person knows, not its temporary name)."""
    return OSError(error.errno, error.strerror or str(error), str(path))


def check_room(folder: Path, nbytes: int, path: Path) -> None:
    """An ``OSError`` naming ``path`` unless ``folder`` is still a writable folder with ``nbytes`` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise naming(error, path) from None
    if not os.access(folder, os.W_OK):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    if free < nbytes:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({free} bytes free, a frame takes up to "
                      f"{nbytes})", str(path))


def open_video_writer(base: Path, rate: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """A ``cv2.VideoWriter`` at the temporary name of ``base`` + the first suffix of :data:`VIDEO_FORMATS` that opens.

    ``size`` is ``(width, height)``. Returns the writer and the final path
    (``.mp4`` or ``.avi``); an ``OSError`` when no format opens.
    """
    for fourcc, suffix in VIDEO_FORMATS:
        path = base.with_name(base.name + suffix)
        temporary = temporary_name(path)
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*fourcc), rate, size)
        try:
            if writer.isOpened():
                return writer, path
        except BaseException:
            writer.release()
            temporary.unlink(missing_ok=True)
            raise
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
        """Add one drawn BGR frame and its records (all of one frame, in face order).

        A write the machine refuses is an ``OSError`` naming the video or
        the timeline, with the temporary files removed (module docstring).
        """
        where = self.video_path or self.base.with_name(f"{self.base.name}_annotated")
        try:
            if self._writer is None:
                self.base.parent.mkdir(parents=True, exist_ok=True)
                check_room(self.base.parent, canvas.nbytes, where)
                self._size = (canvas.shape[1], canvas.shape[0])
                self._writer, self.video_path = open_video_writer(self.base.with_name(f"{self.base.name}_annotated"),
                                                                  self.rate, self._size)
                where = self.csv_path
                self._csv_file = temporary_name(self.csv_path).open("w", encoding="utf-8", newline="")
                self._csv = csv.writer(self._csv_file, lineterminator="\n")
                self._csv.writerow([*TIMELINE_KEYS, *(f"p_{name}" for name in self.class_names)])
            else:
                check_room(self.base.parent, canvas.nbytes, where)
            if (canvas.shape[1], canvas.shape[0]) != self._size:
                canvas = cv2.resize(canvas, self._size, interpolation=cv2.INTER_AREA)
            where = self.video_path
            self._writer.write(canvas)
            where = self.csv_path
            self._csv.writerows(timeline_rows(records, self.class_names))
        except OSError as error:
            self.discard()
            raise naming(error, where) from None
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
        """Close the writers (once); the CSV's last buffered rows are written here."""
        writer, self._writer = self._writer, None
        handle, self._csv_file = self._csv_file, None
        try:
            if writer is not None:
                writer.release()
        finally:
            if handle is not None:
                handle.close()

    def finish(self) -> list[Path]:
        """Close the video and move the three files into place (the PNG where Matplotlib is installed);
        the paths written.

        Without a whole frame nothing is kept (no empty video). A failure
        here, Ctrl-C included, removes every temporary file and leaves
        the files already in place; a refused write is an ``OSError``
        naming the file.
        """
        if self.video_path is None or not self._indices:
            self.discard()
            return []
        where, written = self.csv_path, []
        try:
            self._release()
            for path in (self.video_path, self.csv_path):
                where = path
                written.append(commit(temporary_name(path), path))
            if importlib.util.find_spec("matplotlib") is None:
                return written
            where = self.png_path
            timed = all(t is not None for t in self._times)
            written.append(plot_timeline(self._times if timed else self._indices,
                                         np.array(self._face0, dtype=float), self.class_names, self.png_path,
                                         f"{self.base.name}: face 0", "time (s)" if timed else "frame"))
            return written
        except OSError as error:
            raise naming(error, where) from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Close and remove the temporary files (all of them once :meth:`finish` has placed the rest)."""
        with contextlib.suppress(OSError):
            self._release()
        for path in (self.video_path, self.csv_path, self.png_path):
            if path is not None:
                temporary_name(path).unlink(missing_ok=True)
