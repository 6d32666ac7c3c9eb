"""Score a trained model on labelled data: ``python -m csa_keras.evaluate --model MODEL --data PATH``.

A thin front end over :func:`csa_keras.inference.scoring.evaluate_model`,
for a model of any registered task (``--model``: a ``.keras`` file, a run
directory or a model in the box by name; default ``vrn_fer2013``): the
data is read by its reader with the model's face preprocessing, the classes
the model and the data share are scored, and ``metrics.json``,
``report.md`` and ``confusion_matrix.png`` are written to ``--output``.
"""
from __future__ import annotations

import argparse
import sys

from csa_keras.data.options import add_data_arguments, add_face_arguments
from csa_keras.utils.cli import MODEL_HELP, Parser, entry_point, run_main
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.evaluate"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=(
        "Score a trained CSA or Voting ResNet on any labelled data the readers know, with the "
        "face preprocessing of training; when the model's classes and the data's differ, the "
        "shared classes are scored and the report says which were dropped."))
    parser.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    add_data_arguments(parser)
    parser.add_argument("--reader-option", action="append", metavar="KEY=VALUE",
                        help="a reader setting, repeatable (as for training)")
    parser.add_argument("--split", help="score one of the data's own splits only (e.g. test); "
                                        "with --run: train, val or test of that run")
    parser.add_argument("--run", metavar="RUN_DIR",
                        help="score the images a training run kept for --split, read from the "
                             "data its config.json names (instead of --data): two models compared "
                             "on the same validation images")
    add_face_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="faces per model call (default 64)")
    parser.add_argument("--output", help="folder of the results (default runs/evaluate-<timestamp>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import_tensorflow()
    # After the quiet import: the inference modules import TensorFlow themselves.
    from csa_keras.data.readers import parse_reader_options, reader_kwargs
    from csa_keras.inference.loading import model_or_default
    from csa_keras.inference.scoring import evaluate_model

    def body() -> int:
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        options = reader_kwargs(parse_reader_options(args.reader_option))
        metrics = evaluate_model(model_or_default(args.model), args.data, output=args.output, format=args.format,
                                 detect=args.detect, no_face=args.no_face,
                                 batch_size=args.batch_size, reader_options=options,
                                 split=args.split, run=args.run,
                                 progress=not args.quiet,
                                 log=lambda line: print(line, file=sys.stderr))
        print(f"accuracy {metrics['accuracy']:.4f} [{metrics['accuracy_ci_low']:.4f}, "
              f"{metrics['accuracy_ci_high']:.4f}] on {metrics['n_test']} faces of "
              f"{', '.join(metrics['class_names'])}")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
