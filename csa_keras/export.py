"""Export a model for serving: ``python -m csa_keras.export --model MODEL --to tflite`` (or ``savedmodel``, ``onnx``).

A thin ``argparse`` front end over :func:`csa_keras.inference.export.export_run`:
the model (``--model``: a run directory, whose task's model file
``classifier.keras`` or ``model.keras`` is taken, a ``.keras`` file, or a
model in the box by name; default ``vrn_fer2013``) becomes, as ``--to``
says, a SavedModel directory, a ``.tflite`` file or an ``.onnx`` file (the
``onnx`` extra: tf2onnx, checked on ONNX Runtime),
checked against the Keras model on the run's test images, with its size,
the largest difference of the class probabilities and the single-image
latencies printed and written to ``export.json`` beside it. ``--quantize
float16`` or ``int8`` makes a smaller, faster TFLite model (int8 calibrated
on the run's training faces), measured against the Keras model and the
float32 TFLite model by accuracy on the run's test images, size and latency
(:mod:`csa_keras.inference.quantize`). A bad argument,
an unusable run directory, a model or run file that is wrong (a model of
another input shape, a ``config.json`` that is not an object) or an
``--output`` that would hold the run's model ends in one line on stderr and
exit status 2 (:mod:`csa_keras.utils.cli`), before anything is written; the
artifact is written beside its destination and moved into place only once it
matches the Keras model, so a failure or Ctrl-C leaves nothing half-made.

The export module is imported after the arguments are parsed: ``--help`` and
usage errors answer without loading TensorFlow, and TensorFlow's C++ logging
is quieted before it loads.
"""
from __future__ import annotations

import argparse
import sys

from csa_keras.inference.export import FORMATS
from csa_keras.inference.quantize import CALIBRATION_IMAGES, QUANTIZE
from csa_keras.utils.cli import MODEL_HELP, Parser, entry_point, run_main
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.export"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Export a trained model of any registered task (CSA classifier, Voting "
                    "ResNet) as a TensorFlow SavedModel, a TFLite model or an ONNX model, and check it against "
                    "the Keras model.",
    )
    parser.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--to", dest="format", default="savedmodel", choices=list(FORMATS),
                        help="what to export to: savedmodel (a directory, default), tflite (a "
                             ".tflite file) or onnx (an .onnx file for ONNX Runtime; the onnx extra)")
    parser.add_argument("--output", metavar="PATH",
                        help="the artifact (default <run>/export/<model>_saved_model, "
                             "<run>/export/<model>.tflite or <run>/export/<model>.onnx, where <run> is "
                             "the run directory or the folder of the .keras file; for a model in the box "
                             "export/<name>/...)")
    parser.add_argument("--max-images", type=int, default=256, metavar="N",
                        help="test images for the parity check (default 256, 0 = all)")
    parser.add_argument("--latency-runs", type=int, default=20, metavar="N",
                        help="single-image calls timed for the latency medians (default 20, 0 = none)")
    parser.add_argument("--threads", dest="num_threads", type=int, metavar="N",
                        help="TFLite interpreter or ONNX Runtime threads (default: the runtime's)")
    parser.add_argument("--quantize", default="none", choices=list(QUANTIZE),
                        help="--to tflite only: none (float32, default), float16 (float16 weights) or int8 "
                             "(int8 weights and activations, calibrated on the run's training faces)")
    parser.add_argument("--calibration-images", type=int, metavar="N",
                        help=f"--quantize int8: training faces to calibrate on (default {CALIBRATION_IMAGES})")
    return parser


def _export(args: argparse.Namespace) -> int:
    from csa_keras.inference.export import export_run, summary_lines
    from csa_keras.inference.loading import model_or_default

    record = export_run(model_or_default(args.model), format=args.format, output=args.output,
                        max_images=args.max_images, latency_runs=args.latency_runs,
                        num_threads=args.num_threads, quantize=args.quantize,
                        calibration_images=args.calibration_images,
                        log=lambda line: print(line, file=sys.stderr))
    print("\n".join(summary_lines(record)))
    return 0


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import_tensorflow()
    return run_main(parser, lambda: _export(args))


if __name__ == "__main__":
    sys.exit(main())
