"""Export a run's model for serving: ``python -m csa_keras.export RUN_DIR``.

A thin ``argparse`` front end over :func:`csa_keras.inference.export.export_run`:
the run's ``classifier.keras`` (CSA) or ``model.keras`` (Voting ResNet)
becomes a SavedModel directory or a ``.tflite`` file, checked against the
Keras model on the run's test images, with its size, the largest difference
of the class probabilities and the single-image latencies printed and
written to ``export.json`` beside it. A bad argument ends in one line on
stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m csa_keras.export",
        description="Export a trained CSA classifier or Voting ResNet as a TensorFlow "
                    "SavedModel or a TFLite model, and check it against the Keras model.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run directory of csa_keras.train or voting_resnet.train")
    parser.add_argument("--format", default="savedmodel", choices=["savedmodel", "tflite"],
                        help="savedmodel (a directory, default) or tflite (a .tflite file)")
    parser.add_argument("--output", metavar="PATH",
                        help="the artifact (default RUN_DIR/export/<model>_saved_model or "
                             "RUN_DIR/export/<model>.tflite)")
    parser.add_argument("--max-images", type=int, default=256, metavar="N",
                        help="test images for the parity check (default 256, 0 = all)")
    parser.add_argument("--latency-runs", type=int, default=20, metavar="N",
                        help="single-image calls timed for the latency medians (default 20, 0 = none)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="TFLite interpreter threads (default: the interpreter's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("max_images", "latency_runs"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from csa_keras.inference.export import ExportError, export_run, find_model, summary_lines

    try:
        find_model(args.run_dir)
        record = export_run(args.run_dir, format=args.format, output=args.output,
                            max_images=args.max_images, latency_runs=args.latency_runs,
                            num_threads=args.threads,
                            log=lambda line: print(line, file=sys.stderr))
    except ExportError as error:
        parser.error(str(error))
    print("\n".join(summary_lines(record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
