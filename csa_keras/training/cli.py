"""The command-line options both training commands share (SPEC §5), and how they fail.

``python -m csa_keras.train`` and ``python -m voting_resnet.train`` take the
same data, protocol, preset, output and strategy options; each adds its own.
Bad arguments or unusable data end in one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable


def add_common_arguments(parser: argparse.ArgumentParser, presets, epilog_preset: str) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="dataset path (default: the built-in synthetic faces)")
    data.add_argument("--format", default="auto",
                      help="auto, folder, ckplus, fer2013-csv, rafdb, affectnet, jaffe")
    data.add_argument("--protocol", choices=["holdout", "subject-kfold", "predefined"])
    data.add_argument("--folds", type=int, help="folds of subject-kfold (default 10)")
    data.add_argument("--test-size", type=float, help="test fraction of holdout (default 0.2)")
    data.add_argument("--val-fraction", type=float,
                      help="validation carved from each training split (default 0.1)")
    data.add_argument("--dedupe", action="store_true", default=None,
                      help="drop test images that duplicate a training image exactly")
    data.add_argument("--reader-option", action="append", metavar="KEY=VALUE",
                      help="a reader setting, repeatable: classes=8 (affectnet), "
                           "last_frames=3 / first_as_neutral=true (ckplus), "
                           "public_test_as=val (fer2013-csv), variant=original (rafdb)")
    data.add_argument("--detect", choices=["auto", "always", "never"],
                      help="Viola-Jones face detection (default auto: full frames only)")
    data.add_argument("--no-face", choices=["skip", "center", "error"],
                      help="what to do with a frame where no face is found (default skip)")
    train = parser.add_argument_group("training")
    train.add_argument("--preset", default="paper", choices=sorted(presets), help=epilog_preset)
    train.add_argument("--batch-size", type=int, help="global batch size")
    train.add_argument("--seed", type=int)
    run = parser.add_argument_group("run")
    run.add_argument("--output", help="run directory (default runs/<command>-<timestamp>)")
    run.add_argument("--strategy", choices=["auto", "one-device", "mirrored", "multi-worker"])
    run.add_argument("--precision", choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                     help="Keras dtype policy (default float32); auto: mixed_float16 on a GPU, "
                          "mixed_bfloat16 on a CPU with AMX or AVX-512 BF16, else float32")
    run.add_argument("--mixed-precision", dest="precision", action="store_const", const="auto",
                     help="the same as --precision auto")
    run.add_argument("--deterministic", action="store_true", default=None,
                     help="TensorFlow op determinism on GPUs too (always on without a GPU)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run killed in --output (same options) from its last "
                          "completed epoch")
    run.add_argument("--no-gradcam", dest="gradcam", action="store_false", default=None)
    run.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def _reader_options(pairs: list[str] | None) -> tuple[tuple[str, str], ...] | None:
    if not pairs:
        return None
    options = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--reader-option takes KEY=VALUE, got {pair!r}")
        options.append((key.strip(), value.strip()))
    return tuple(options)


def common_changes(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        reader_options=_reader_options(args.reader_option),
        data=args.data, format=args.format, protocol=args.protocol, folds=args.folds,
        test_size=args.test_size, val_fraction=args.val_fraction, dedupe=args.dedupe,
        detect=args.detect, no_face=args.no_face, batch_size=args.batch_size, seed=args.seed,
        strategy=args.strategy, precision=args.precision, gradcam=args.gradcam,
        deterministic=args.deterministic,
    )


def run_command(parser: argparse.ArgumentParser, argv, command: str,
                make_config: Callable[[argparse.Namespace], Any],
                run: Callable[..., dict], summary: Callable[[dict], str]) -> int:
    """Parse, check, run; every user error ends in one line and exit status 2."""
    args = parser.parse_args(argv)
    try:
        config = make_config(args).validate()
        if args.data is not None and not os.path.exists(args.data):
            raise ValueError(f"--data {args.data} does not exist")
        if args.resume and not args.output:
            raise ValueError("--resume needs the --output of the run to continue")
        from csa_keras.training.rundir import default_output, prepare

        output = prepare(args.output or default_output(command))
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        verbose = 0 if args.quiet else ("auto" if sys.stdout.isatty() else 2)
        metrics = run(config, output=output, verbose=verbose, resume=args.resume,
                      log=lambda line: print(line, file=sys.stderr))
    except ValueError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"{summary(metrics)}\nrun directory: {output}")
    return 0
