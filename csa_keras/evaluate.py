"""Score a trained model on labelled data: ``python -m csa_keras.evaluate MODEL_OR_RUN --data PATH``.

A thin front end over :func:`csa_keras.inference.evaluation.evaluate_model`,
for a model of any registered task: the data is read by its reader with the
model's face preprocessing, the classes the model and the data share are
scored, and ``metrics.json``, ``report.md`` and ``confusion_matrix.png`` are
written to ``--output``.
"""
from __future__ import annotations

import argparse
import sys

from csa_keras.data.faces import DETECT_MODES, NO_FACE_MODES
from csa_keras.utils.cli import Parser, entry_point, run_main
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.evaluate"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=(
        "Score a trained CSA or Voting ResNet on any labelled data the readers know, with the "
        "face preprocessing of training; when the model's classes and the data's differ, the "
        "shared classes are scored and the report says which were dropped."))
    parser.add_argument("model", metavar="MODEL_OR_RUN",
                        help="a run directory of a training command, its .keras model, or a "
                             "model in the box by name (csa_fer2013)")
    parser.add_argument("--data", help="dataset path (default: the built-in synthetic faces)")
    parser.add_argument("--format", default="auto",
                        help="auto, folder, ckplus, fer2013-csv, rafdb, affectnet, jaffe")
    parser.add_argument("--reader-option", action="append", metavar="KEY=VALUE",
                        help="a reader setting, repeatable (as for training)")
    parser.add_argument("--split", help="score one of the data's own splits only (e.g. test)")
    parser.add_argument("--detect", choices=DETECT_MODES, default="auto")
    parser.add_argument("--no-face", choices=NO_FACE_MODES, default="skip")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", help="folder of the results (default runs/evaluate-<timestamp>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import_tensorflow()
    # After the quiet import: the inference modules import TensorFlow themselves.
    from csa_keras.inference.evaluation import evaluate_model
    from csa_keras.training.cli import reader_options
    from csa_keras.training.config import RunConfig

    def body() -> int:
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        options = RunConfig(reader_options=reader_options(args.reader_option) or ()).reader_kwargs()
        metrics = evaluate_model(args.model, args.data, output=args.output, format=args.format,
                                 detect=args.detect, no_face=args.no_face,
                                 batch_size=args.batch_size, reader_options=options,
                                 split=args.split,
                                 progress=not args.quiet,
                                 log=lambda line: print(line, file=sys.stderr))
        print(f"accuracy {metrics['accuracy']:.4f} [{metrics['accuracy_ci_low']:.4f}, "
              f"{metrics['accuracy_ci_high']:.4f}] on {metrics['n_test']} faces of "
              f"{', '.join(metrics['class_names'])}")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
