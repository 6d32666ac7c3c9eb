"""Where the prediction command's records go, and the count it reports of them.

:class:`RecordOutput` is the destination: stdout, or a file written under a
temporary name and renamed into place
(:class:`~csa_keras.utils.files.TextWriter`), so a killed run never leaves
a half-written file; :class:`RecordWriter` writes each record there as a
JSON line or a CSV row (:mod:`csa_keras.inference.records`), flushed line
by line so that a pipe sees them at once; :class:`Tally` counts what was
written for the one summary line. :func:`write_records` drives a
:class:`~csa_keras.inference.predictor.Predictor` over files
(:func:`write_files`) or a live source (:func:`write_live`) into both.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import IO, Any

from csa_keras.inference.records import flat_columns, flat_row, rounded_record
from csa_keras.utils.files import TextWriter


class RecordOutput:
    """The records' destination: stdout (``path`` ``None``), or ``path`` written under a temporary
    name (:class:`~csa_keras.utils.files.TextWriter`: renamed into place when the block ends normally
    or on Ctrl-C, every record written so far whole, and removed on any other error)."""

    def __init__(self, path: str | None) -> None:
        self.file = None if path is None else TextWriter(path)

    def __enter__(self) -> IO[str]:
        return sys.stdout if self.file is None else self.file.__enter__()

    def __exit__(self, kind, error, traceback) -> None:
        if self.file is None:
            sys.stdout.flush()
        else:
            self.file.__exit__(kind, error, traceback)


class RecordWriter:
    """Records as JSON lines (``fmt`` ``jsonl``) or CSV rows (``csv``, a header first), flushed line
    by line so a pipe sees them at once."""

    def __init__(self, stream: IO[str], fmt: str, class_names: Sequence[str]) -> None:
        self.stream, self.fmt, self.class_names = stream, fmt, list(class_names)
        self.csv = None
        if fmt == "csv":
            self.csv = csv.writer(stream, lineterminator="\n")
            self.csv.writerow(flat_columns(self.class_names))

    def write(self, record: dict[str, Any]) -> None:
        if self.csv is None:
            self.stream.write(json.dumps(rounded_record(record)) + "\n")
        else:
            self.csv.writerow(["" if value is None else value for value in flat_row(record, self.class_names)])
        self.stream.flush()


def model_label(model: str | os.PathLike | Any) -> str:
    """What the summary line calls a model: a :class:`~csa_keras.inference.loading.ModelSource`'s
    label, the name of a model in the box, else its path."""
    from csa_keras.inference.loading import pretrained_name

    label = getattr(model, "label", None)
    return label or pretrained_name(model) or str(model)


class Tally:
    """What was written, for the summary line: records by status, sources, frames, annotated copies
    not written, and on a live source its frames per second and the frames shown."""

    def __init__(self, model: str = "") -> None:
        self.model = model
        self.counts: Counter = Counter()
        self.sources: set = set()
        self.not_annotated: set = set()
        self.frames = 0
        self.fps: float | None = None
        self.shown: int | None = None

    def add(self, record: dict[str, Any]) -> None:
        self.counts[record["status"]] += 1
        self.sources.add(record["source"])
        if record["status"] != "error" and record["error"] is not None:
            self.not_annotated.add(record["source"])

    def summary(self, live: bool) -> str:
        counts = self.counts
        where = (f"{self.frames} frame{'s' * (self.frames != 1)}" if live
                 else f"{len(self.sources)} file{'s' * (len(self.sources) != 1)}")
        parts = [f"{counts['ok']} face{'s' * (counts['ok'] != 1)} in {where}"]
        if counts["no_face"]:
            what = "frame" if live else "image"
            parts.append(f"{counts['no_face']} {what}{'s' * (counts['no_face'] != 1)} with no face")
        if counts["error"]:
            parts.append(f"{counts['error']} unreadable")
        if self.not_annotated:
            n = len(self.not_annotated)
            parts.append(f"{n} annotated cop{'ies' if n != 1 else 'y'} not written (reason in the records)")
        if live and self.fps is not None:
            parts.append(f"{self.fps:.1f} frames per second")
        if self.shown is not None:
            parts.append(f"{self.shown} shown in a window")
        return ", ".join(parts) + (f" (model {self.model})" if self.model else "")


def write_files(predictor, items: Iterable, writer: RecordWriter, tally: Tally, *, every: int = 1,
                progress: bool = True, annotate: str | None = None) -> None:
    """Write and count the records of ``predictor`` over input files
    (:meth:`~csa_keras.inference.predictor.Predictor.predict_paths`)."""
    records = predictor.predict_paths(items, every=every, progress=progress, annotate=annotate)
    with contextlib.closing(records):
        for record in records:
            writer.write(record)
            tally.add(record)


def write_live(frames, writer: RecordWriter, tally: Tally, *, max_frames: int | None = None,
               progress: bool = True, show: str | None = None) -> None:
    """Write and count each frame's smoothed records of a live source
    (:class:`~csa_keras.inference.stream.FrameStream`); the measured frames per second go in the
    progress bar, and with ``show`` (the window's title) each frame into a window until it is
    closed (:mod:`csa_keras.inference.window`)."""
    from tqdm import tqdm

    window = contextlib.nullcontext()
    if show is not None:
        from csa_keras.inference.window import LiveWindow

        window = LiveWindow(show)
        tally.shown = 0

    with frames, window, tqdm(total=max_frames, desc="live", unit="frame", disable=not progress, leave=False) as bar:
        for frame in frames:
            for record in frame.smoothed:
                writer.write(record)
                tally.add(record)
            tally.frames, tally.fps = tally.frames + 1, frame.fps
            bar.set_postfix_str(f"{frame.fps:.1f} fps", refresh=False)
            bar.update(1)
            if show is not None:
                going_on = window.show(frame)
                tally.shown = window.shown
                if not going_on:
                    break


def write_records(predictor, tally: Tally, *, output: str | None = None, fmt: str = "jsonl",
                  items: Iterable = (), frames=None, every: int = 1, progress: bool = True,
                  annotate: str | None = None, max_frames: int | None = None, show: str | None = None) -> None:
    """Write the records of ``predictor`` to ``output`` (stdout when ``None``) as ``fmt``, counted
    in ``tally``: those of the input files ``items``, or of the live ``frames`` when given (closed at
    the end, whatever happens). A Ctrl-C keeps every record written so far (:class:`RecordOutput`)."""
    try:
        with RecordOutput(output) as stream:
            writer = RecordWriter(stream, fmt, predictor.class_names)
            if frames is not None:
                write_live(frames, writer, tally, max_frames=max_frames, progress=progress, show=show)
            else:
                write_files(predictor, items, writer, tally, every=every, progress=progress, annotate=annotate)
    finally:
        if frames is not None:
            frames.close()
