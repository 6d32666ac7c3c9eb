"""The training command of every task: shared options, the task's own, one-line failures.

``python -m csa_keras.train`` and ``python -m voting_resnet.train`` are the
``main`` and ``build_parser`` that :func:`command` and :func:`parser_of` make
for their task's name: :func:`train_main`, with the same data, protocol,
recipe, output, strategy and precision options, plus the options the task
adds (:meth:`csa_keras.tasks.Task.add_arguments`). Bad arguments or unusable
data end in one line on stderr and exit status 2, and so does an ``--output``
that is ``--data``, lies inside it or holds it (:func:`csa_keras.utils.paths.check_outputs`):
a run directory inside the dataset would have its figures read as class
images by the next run.

Importing this module loads nothing but the standard library and the
project's command helpers: the data layer, the engine and TensorFlow are
imported inside the functions that use them. A command's module thus
imports at once, under any Keras backend and without the ``train`` extra,
and everything after is inside its ``main``, which ends Ctrl-C during
start-up, another backend or a missing extra in one line
(:func:`csa_keras.utils.cli.entry_point`).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from csa_keras.tasks import Task, get_task
from csa_keras.utils.cli import Parser, entry_point, run_main
from csa_keras.utils.paths import check_outputs
from csa_keras.utils.quiet import import_tensorflow


def add_common_arguments(parser: argparse.ArgumentParser, recipes, recipe_help: str) -> None:
    """The options every training command takes; ``recipes`` are the named recipes ``--recipe``
    chooses among (the library's presets)."""
    from csa_keras.data.options import add_data_arguments, add_face_arguments
    from csa_keras.data.protocols import PROTOCOLS
    from csa_keras.training.config import PRECISIONS, STRATEGIES

    data = parser.add_argument_group("data")
    add_data_arguments(data)
    data.add_argument("--protocol", choices=PROTOCOLS,
                      help="how the data is split for testing: holdout (one random split), "
                           "subject-kfold (folds by subject), predefined (the dataset's own splits; "
                           "holdout where it has none) (default: holdout for the CSA, predefined for "
                           "the Voting ResNet)")
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
    data.add_argument("--data-licence", metavar="TEXT",
                      help="the data's licence terms for MODEL_CARD.md (default: a LICENSE file "
                           "at the data's root, if any)")
    add_face_arguments(data, detect=None, no_face=None)
    train = parser.add_argument_group("training")
    train.add_argument("--recipe", dest="preset", default="paper", choices=sorted(recipes),
                       help=recipe_help)
    train.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's)")
    train.add_argument("--seed", type=int,
                       help="the seed of the splits, the initial weights and the augmentation "
                            "(default 0)")
    run = parser.add_argument_group("run")
    run.add_argument("--output", help="the run directory (default runs/<command>-<timestamp>)")
    run.add_argument("--strategy", choices=STRATEGIES,
                     help="how training is distributed: auto (every GPU, else the CPU), one-device, "
                          "mirrored, multi-worker (from TF_CONFIG) (default auto)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="Keras dtype policy (default: the recipe's, float32 in training, auto "
                          "in the comparison's recipes but smoke); auto: mixed_float16 on a GPU, "
                          "mixed_bfloat16 on a CPU with AMX or AVX-512 BF16, else float32")
    run.add_argument("--deterministic", action="store_true", default=None,
                     help="TensorFlow op determinism on GPUs too (always on without a GPU)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run killed in --output (same options) from its last "
                          "completed epoch")
    run.add_argument("--no-gradcam", dest="gradcam", action="store_false", default=None,
                     help="draw no Grad-CAM figure in the report")
    run.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")


def common_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the shared options given on the command line (``None``: the recipe's)."""
    from csa_keras.data.readers import parse_reader_options

    return dict(
        reader_options=parse_reader_options(args.reader_option) or None,
        data=args.data, data_licence=args.data_licence, format=args.format, protocol=args.protocol, folds=args.folds,
        test_size=args.test_size, val_fraction=args.val_fraction, dedupe=args.dedupe,
        detect=args.detect, no_face=args.no_face, batch_size=args.batch_size, seed=args.seed,
        strategy=args.strategy, precision=args.precision, gradcam=args.gradcam,
        deterministic=args.deterministic,
    )


def build_parser(task: Task, prog: str) -> argparse.ArgumentParser:
    """The training command's parser: the shared options, then the task's."""
    parser = Parser(prog=prog, description=f"Train and evaluate: {task.description}; write the "
                                           "run directory.")
    recipes = ", ".join(f"{name}" for name in task.presets)
    add_common_arguments(parser, task.presets, f"the named training recipe: {recipes} (default paper)")
    task.add_arguments(parser)
    return parser


def config_from_args(task: Task, args: argparse.Namespace):
    """The task's recipe (its preset) with every option given on the command line."""
    from csa_keras.training.config import pick_preset

    return pick_preset(task.presets, args.preset).replace(**common_changes(args),
                                                          **task.config_changes(args))


def train_main(task_name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse, check and run one training command; every user error is one line, exit 2."""
    from csa_keras.training import rundir
    from csa_keras.training.experiment import run_experiment

    task = get_task(task_name)
    parser = build_parser(task, prog or f"{task_name} training")
    args = parser.parse_args(argv)

    def check():
        config = config_from_args(task, args).validate()
        if args.data is not None and not os.path.exists(args.data):
            raise ValueError(f"--data {args.data} does not exist")
        if args.data is None and args.format != "auto":
            raise ValueError("--data-format needs --data: the built-in faces have no format to "
                             "choose")
        if args.resume and not args.output:
            raise ValueError("--resume needs the --output of the run to continue")
        output = args.output or rundir.default_output(task.name)
        check_outputs({"output": output}, {"data": args.data}, folders=("output",))
        return config, rundir.prepare(output)

    def body() -> int:
        config, output = check()
        verbose = 0 if args.quiet else ("auto" if sys.stdout.isatty() else 2)
        try:
            metrics = run_experiment(task, config, output=output, verbose=verbose, resume=args.resume,
                                     log=lambda line: print(line, file=sys.stderr))
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"to continue, run the same command with --output {output} "
                                    "--resume") from None
        except OSError as error:
            raise OSError(error.errno, f"{error.strerror or error}; once that is fixed, run the same "
                          f"command with --output {output} --resume", error.filename) from None
        print(f"{task.summary(metrics)}\nrun directory: {output}")
        return 0

    return run_main(parser, body)


def command(task: str, prog: str) -> Callable[[list[str] | None], int]:
    """The ``main`` of a task's training command (``python -m <package>.train``): TensorFlow
    imported quietly, then :func:`train_main`."""

    @entry_point(prog)
    def main(argv: list[str] | None = None) -> int:
        import_tensorflow()
        return train_main(task, argv, prog=prog)

    return main


def parser_of(task: str, prog: str) -> Callable[[], argparse.ArgumentParser]:
    """The ``build_parser`` of a task's training command: its parser, built as ``main`` builds it
    (looking the task up loads TensorFlow)."""
    return lambda: build_parser(get_task(task), prog)
