"""Predict expressions on photographs, folders, videos and live sources: ``python -m csa_keras.predict``.

A thin ``argparse`` front end over
:class:`csa_keras.inference.predictor.Predictor`, whose records
:mod:`csa_keras.inference.outputs` writes and counts. The model is the default
model in the box (:data:`csa_keras.inference.loading.DEFAULT_MODEL`, the Voting ResNet)
unless ``--model`` names another model in the box, a run directory or a
``.keras`` file of any registered task. An INPUT that is a model (a
``.keras`` file, or a folder holding a task's model file) is refused: the
model is given with ``--model`` only (:func:`split_model`).

It writes one record per face (``--output-format``: JSON lines, or CSV with
one ``p_<class>`` column per class) to stdout or to ``--output``, which is written under a
temporary name and renamed at the end, so a killed run never leaves a
half-written file. ``--camera N`` or ``--stream SOURCE`` (a video file or a
stream URL) classifies a live source frame by frame instead, with each
face's probabilities averaged over the last ``--smooth`` frames and the
frames per second in the progress bar; ``--show`` shows each frame in a window as it
is classified, with its boxes, labels, scores and frames per second, until ``q``
or Esc (:mod:`csa_keras.inference.window`; without a display or an OpenCV with
HighGUI it is refused in one line before any work). Ctrl-C stops either: the records
written so far are kept (``--output`` renamed into place, an annotated live
video finished) and the exit status is 130. Bad arguments, an unusable model
file, a missing input or an empty folder end in one line on stderr and exit
status 2 (:mod:`csa_keras.utils.cli`); an unreadable image or video among
the inputs is an ``error`` record and the rest goes on.

Outputs never touch inputs: an ``--output`` or ``--annotate`` that is an
input (or, for ``--output``, the model file), lies inside an input folder,
or (``--annotate``) holds an input, and an ``--output`` whose name is too
long for its file system, are refused in one line before any work
(:func:`csa_keras.utils.paths.check_outputs`), and so is one that would
replace another run's results (a run directory, a file in one, a model
file); nothing is created before the model loads. Annotated copies take names
of their own (``<stem>_annotated<suffix>``); one that cannot be written (a
name too long for the file system) is skipped, its reason in the records'
``error``, and counted in the summary.

The inference modules are imported after the arguments are parsed: ``--help``
and usage errors answer without loading TensorFlow, and TensorFlow's C++
logging is quieted before it loads. ``--runtime litert`` (the default where
TensorFlow is not installed) runs the model's TFLite artifact on LiteRT and
loads neither TensorFlow nor Keras (:mod:`csa_keras.inference.litert`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from csa_keras.data.options import add_face_arguments
from csa_keras.inference.litert import RUNTIMES
from csa_keras.inference.records import RECORD_FORMATS
from csa_keras.utils.cli import MODEL_HELP, Parser, entry_point, run_main, system_error
from csa_keras.utils.files import creatable_folder
from csa_keras.utils.paths import check_outputs
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.predict"

DEFAULT_SMOOTH = 5
"""Frames a live source's probabilities are averaged over unless ``--smooth`` says otherwise."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Detect the faces in photographs, folders, videos or a live camera (Viola-Jones, "
                    "as in training) and classify the expression of each with a model in the box (default "
                    "the Voting ResNet vrn_fer2013) or a trained model of any registered task (CSA, "
                    "Voting ResNet); one record per face.",
    )
    parser.add_argument("inputs", metavar="INPUT", nargs="*",
                        help="image files, folders (searched recursively) and video files")
    output = parser.add_argument_group("output")
    output.add_argument("--output-format", dest="format", default="jsonl", choices=RECORD_FORMATS,
                        help="the records' format: jsonl (JSON lines, default) or csv (a p_<class> "
                             "column per class)")
    output.add_argument("--output", metavar="FILE", help="write the records to FILE (default stdout)")
    output.add_argument("--annotate", metavar="DIR",
                        help="write copies of the images with boxes and labels drawn, and of each video "
                             "an annotated video with a timeline of the probabilities (CSV and PNG)")
    output.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    live = parser.add_argument_group("live sources")
    source = live.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="N",
                        help="classify camera N (0: the first) frame by frame until Ctrl-C")
    source.add_argument("--stream", metavar="SOURCE",
                        help="classify a video file or a stream URL (rtsp://, http://) frame by frame")
    live.add_argument("--smooth", type=int, metavar="K",
                      help=f"average each face's probabilities over the last K frames "
                           f"(default {DEFAULT_SMOOTH}; 1: no smoothing)")
    live.add_argument("--max-frames", type=int, metavar="N", help="stop after N classified frames")
    live.add_argument("--show", action="store_true",
                      help="show each frame in a window as it is classified: boxes, labels, scores and frames "
                           "per second (q or Esc closes it); needs a display and OpenCV with HighGUI")
    faces = parser.add_argument_group("faces")
    add_face_arguments(faces)
    faces.add_argument("--min-face", type=int, default=24, metavar="PX",
                       help="the smallest face to look for, in pixels of the decoded image (default 24, "
                            "the cascade's window); above 24 the search runs on a copy reduced to match, "
                            "about 3x faster at 48 on 640x480: for cameras and close-up photographs")
    faces.add_argument("--every", type=int, default=1, metavar="N",
                       help="videos and live sources: classify every N-th frame (default 1)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    model.add_argument("--batch-size", type=int, default=64, metavar="N",
                       help="faces per model call (default 64)")
    model.add_argument("--runtime", choices=RUNTIMES, default="auto",
                       help="what runs the model: keras (TensorFlow), litert (its TFLite artifact, "
                            "without TensorFlow) or auto (default: keras where TensorFlow is installed, "
                            "else litert)")
    model.add_argument("--voting", choices=["soft", "hard"],
                       help="Voting ResNet only: vote over the 10 views this way "
                            "(default: the model's own vote)")
    return parser


def split_model(args: argparse.Namespace) -> tuple[str | Path, list[str]]:
    """The model (``--model``, else the default model in the box) and the inputs; an INPUT that is a model
    is refused in one line (the model is given with ``--model`` only)."""
    from csa_keras.inference import loading
    from csa_keras.inference.inputs import names_a_model

    inputs = list(args.inputs)
    for argument in inputs:
        if names_a_model(argument, getattr(args, "runtime", "keras")):
            raise ValueError(f"INPUT {argument} is a model, not an image, folder of images or video: "
                             "give a model with --model")
    return loading.model_or_default(args.model), inputs


def _live_source(args: argparse.Namespace, inputs: list[str]) -> int | str | None:
    """The camera index or stream source, checked; ``None`` for files."""
    live = args.camera is not None or args.stream is not None
    flag = "--camera" if args.camera is not None else "--stream"
    if live and inputs:
        raise ValueError(f"{flag} takes no INPUT (received {inputs[0]}): predict on files without it")
    if not live:
        if not inputs:
            raise ValueError("no INPUT given: give image files, folders or videos, or --camera N / --stream SOURCE")
        for setting, value in (("--smooth", args.smooth), ("--max-frames", args.max_frames),
                               ("--show", args.show or None)):
            if value is not None:
                raise ValueError(f"{setting} applies to --camera and --stream only")
        return None
    if args.smooth is not None and args.smooth < 1:
        raise ValueError(f"--smooth must be at least 1. Received: --smooth={args.smooth}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1. Received: --max-frames={args.max_frames}")
    if args.camera is not None:
        if args.camera < 0:
            raise ValueError(f"--camera must be at least 0. Received: --camera={args.camera}")
        return args.camera
    if "://" not in args.stream and not Path(args.stream).is_file():
        raise ValueError(f"--stream {args.stream} is not a video file or a stream URL")
    return args.stream


def _check(args: argparse.Namespace) -> tuple[Any, list, int | str | None]:
    """Everything that can be checked before the model is loaded; one-line ``ValueError`` s.

    The model comes back resolved once: a :class:`~csa_keras.inference.loading.ModelSource`
    (its archive read and bounded), or the ``.tflite`` artifact's path on the ``litert`` runtime.
    """
    from csa_keras.inference.inputs import collect_inputs
    from csa_keras.inference.loading import ModelSource

    if args.every < 1:
        raise ValueError(f"--every must be at least 1. Received: --every={args.every}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1. Received: --batch-size={args.batch_size}")
    if args.min_face < 1:
        raise ValueError(f"--min-face must be at least 1 pixel. Received: --min-face={args.min_face}")
    model, inputs = split_model(args)
    source = _live_source(args, inputs)
    if args.show:
        from csa_keras.inference.window import check_window

        check_window()
    from csa_keras.inference.litert import choose_runtime, resolve_artifact

    if choose_runtime(getattr(args, "runtime", "auto")) == "litert":
        resolved = model_path = resolve_artifact(model)
    else:
        resolved = ModelSource.resolve(model)
        model_path = resolved.path
    items = [] if source is not None else collect_inputs(inputs)
    read = [*inputs, *(item.path for item in items)]
    if args.stream is not None and Path(args.stream).exists():
        read.append(args.stream)
    check_outputs({"output": args.output}, {"model": model_path})
    check_outputs({"output": args.output, "annotate": args.annotate}, {"INPUT": read}, folders=("annotate",),
                  results=("output", "annotate"))
    if args.output is not None:
        target = Path(args.output)
        if target.is_dir():
            raise ValueError(f"--output must be a file, not a folder: {target}")
        if not target.parent.is_dir():
            raise ValueError(f"--output {target}: folder {target.parent} does not exist")
        if not os.access(target.parent, os.W_OK):
            raise ValueError(f"--output {target}: folder {target.parent} is not writable")
    if args.annotate is not None:
        creatable_folder(args.annotate, "annotate")
    return resolved, items, source


def _predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The command's work once the arguments are parsed; a ``ValueError`` is a one-line exit 2."""
    model, items, source = _check(args)
    from csa_keras.inference.predictor import Predictor

    predictor = Predictor.from_run(model, runtime=args.runtime, detect=args.detect, no_face=args.no_face,
                                   voting=args.voting, batch_size=args.batch_size, min_size=args.min_face)
    live = source is not None
    frames = None
    if live:
        frames = predictor.stream(source, smooth=args.smooth or DEFAULT_SMOOTH, every=args.every,
                                  max_frames=args.max_frames, annotate=args.annotate)
    from csa_keras.inference.outputs import Tally, model_label, write_records

    tally = Tally(model_label(model))
    try:
        write_records(predictor, tally, output=args.output, fmt=args.format, items=items, frames=frames,
                      every=args.every, progress=not args.quiet, annotate=args.annotate,
                      max_frames=args.max_frames, show=f"{PROG}: {frames.name}" if args.show else None)
    except KeyboardInterrupt:
        if not args.quiet:
            print(tally.summary(live), file=sys.stderr)
        raise
    except OSError as error:
        return system_error(parser.prog, error)
    if not args.quiet:
        print(tally.summary(live), file=sys.stderr)
    return 0


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from csa_keras.inference.litert import choose_runtime

    args.runtime = choose_runtime(args.runtime)
    if args.runtime == "keras":
        import_tensorflow()
    return run_main(parser, lambda: _predict(args, parser))


if __name__ == "__main__":
    sys.exit(main())
