"""Predict expressions on photographs, folders and videos: ``python -m csa_keras.predict``.

A thin ``argparse`` front end over
:class:`csa_keras.inference.predictor.Predictor`, for a model of any
registered task (a run directory, or its ``classifier.keras`` /
``model.keras``). It writes one record per face (JSON lines, or CSV with one
``p_<class>`` column per class) to stdout or to ``--output``, which is
written under a temporary name and renamed at the end, so a killed run never
leaves a half-written file. Bad arguments, an unusable model file, a missing
input or an empty folder end in one line on stderr and exit status 2
(:mod:`csa_keras.utils.cli`); an unreadable image or video among the inputs
is an ``error`` record and the rest goes on.

The inference modules are imported after the arguments are parsed: ``--help``
and usage errors answer without loading TensorFlow, and TensorFlow's C++
logging is quieted before it loads.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from csa_keras.utils.cli import Parser, run_main
from csa_keras.utils.files import temporary_name
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.predict"
CSV_KEYS = ("source", "frame", "time_s", "face", "status", "crop", "x", "y", "w", "h", "label", "score")
"""The CSV columns before the ``p_<class>`` probabilities and the final ``error`` column."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Detect the faces in photographs, folders and videos (Viola-Jones, as in "
                    "training) and classify the expression of each with a trained model of "
                    "any registered task (CSA, Voting ResNet); one record per face.",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL",
                        help="a run directory of either training command, or its classifier.keras / model.keras")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="image files, folders (searched recursively) and video files")
    output = parser.add_argument_group("output")
    output.add_argument("--format", default="jsonl", choices=["jsonl", "csv"],
                        help="JSON lines (default) or CSV with a p_<class> column per class")
    output.add_argument("--output", metavar="FILE", help="write the records to FILE (default stdout)")
    output.add_argument("--annotate", metavar="DIR",
                        help="write copies of the images and sampled video frames with boxes and labels drawn")
    output.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--detect", default="auto", choices=["auto", "always", "never"],
                       help="Viola-Jones detection (default auto: small images are face crops already)")
    faces.add_argument("--no-face", default="skip", choices=["skip", "center"],
                       help="an image without a face: report it as no_face (skip, default) or "
                            "classify its centre square")
    faces.add_argument("--every", type=int, default=1, metavar="N",
                       help="videos: classify every N-th frame (default 1)")
    model = parser.add_argument_group("model")
    model.add_argument("--batch-size", type=int, default=64, metavar="N",
                       help="faces per model call (default 64)")
    model.add_argument("--voting", choices=["soft", "hard"],
                       help="Voting ResNet only: vote over the 10 views this way "
                            "(default: the model's own vote)")
    return parser


def _check(args: argparse.Namespace) -> tuple[Path, list]:
    """Everything that can be checked before the model is loaded; one-line ``ValueError`` s."""
    from csa_keras.inference.drawing import annotation_folder
    from csa_keras.inference.inputs import collect_inputs
    from csa_keras.inference.loading import read_archive_config, resolve_model_path

    if args.every < 1:
        raise ValueError(f"every must be at least 1. Received: every={args.every}")
    if args.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1. Received: batch_size={args.batch_size}")
    model_path = resolve_model_path(args.model)
    read_archive_config(model_path)
    items = collect_inputs(args.inputs)
    if args.output is not None:
        target = Path(args.output)
        if target.is_dir():
            raise ValueError(f"--output must be a file, not a folder: {target}")
        if not target.parent.is_dir():
            raise ValueError(f"--output {target}: folder {target.parent} does not exist")
        if not os.access(target.parent, os.W_OK):
            raise ValueError(f"--output {target}: folder {target.parent} is not writable")
    if args.annotate is not None:
        annotation_folder(args.annotate)
    return model_path, items


class _Writer:
    """Records as JSON lines or CSV rows, flushed line by line so a pipe sees them at once."""

    def __init__(self, stream: IO[str], fmt: str, class_names: Sequence[str]) -> None:
        self.stream, self.fmt, self.class_names = stream, fmt, list(class_names)
        self.csv = None
        if fmt == "csv":
            self.csv = csv.writer(stream, lineterminator="\n")
            self.csv.writerow([*CSV_KEYS, *(f"p_{name}" for name in self.class_names), "error"])

    def write(self, record: dict[str, Any]) -> None:
        if self.csv is None:
            self.stream.write(json.dumps(_rounded(record)) + "\n")
        else:
            box = record["box"] or [None] * 4
            probabilities = record["probabilities"] or {}
            row = [record["source"], record["frame"], record["time_s"], record["face"], record["status"],
                   record["crop"], *box, record["label"], _round(record["score"]),
                   *(_round(probabilities.get(name)) for name in self.class_names), record["error"]]
            self.csv.writerow(["" if value is None else value for value in row])
        self.stream.flush()


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _rounded(record: dict[str, Any]) -> dict[str, Any]:
    record = dict(record)
    record["score"] = _round(record["score"])
    if record["probabilities"] is not None:
        record["probabilities"] = {k: _round(v) for k, v in record["probabilities"].items()}
    return record


def _summary(counts: Counter, sources: set) -> str:
    parts = [f"{counts['ok']} face{'s' * (counts['ok'] != 1)} in {len(sources)} "
             f"file{'s' * (len(sources) != 1)}"]
    if counts["no_face"]:
        parts.append(f"{counts['no_face']} image{'s' * (counts['no_face'] != 1)} with no face")
    if counts["error"]:
        parts.append(f"{counts['error']} unreadable")
    return ", ".join(parts)


def _predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The command's work once the arguments are parsed; a ``ValueError`` is a one-line exit 2."""
    model_path, items = _check(args)
    from csa_keras.inference.predictor import Predictor

    predictor = Predictor.from_run(model_path, detect=args.detect, no_face=args.no_face,
                                   voting=args.voting, batch_size=args.batch_size)
    temporary = None
    if args.output is None:
        stream = sys.stdout
    else:
        temporary = temporary_name(Path(args.output))
        stream = temporary.open("w", encoding="utf-8", newline="")
    counts: Counter = Counter()
    sources: set = set()
    try:
        writer = _Writer(stream, args.format, predictor.class_names)
        for record in predictor.predict_paths(items, every=args.every,
                                              progress=not args.quiet, annotate=args.annotate):
            writer.write(record)
            counts[record["status"]] += 1
            sources.add(record["source"])
        if temporary is not None:
            stream.close()
            os.replace(temporary, args.output)
    except OSError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    finally:
        if temporary is not None:
            stream.close()
            temporary.unlink(missing_ok=True)
    if not args.quiet:
        print(_summary(counts, sources), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import_tensorflow()
    return run_main(parser, lambda: _predict(args, parser))


if __name__ == "__main__":
    sys.exit(main())
