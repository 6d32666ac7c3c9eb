"""``python -m csa_keras.data summary --data PATH``: what a reader and the face preprocessing found.

Prints counts per class and split, subjects, faces detected, and every
skipped file grouped by reason with examples; ``--json`` prints one JSON
object instead (format, n_images, class_counts, split_counts, n_subjects,
skipped, ...). The progress bar goes to stderr, so ``--json`` output stays
parseable. Bad input ends with one ``python -m csa_keras.data: error: ...``
line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from csa_keras.data.faces import CHANNELS, FaceDetectorError, FaceSettings
from csa_keras.data.loader import load_dataset
from csa_keras.data.options import add_data_arguments, add_face_arguments
from csa_keras.utils.cli import Parser, entry_point, fail, run_main


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m csa_keras.data", description="Inspect datasets as the loader sees them.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    summary = commands.add_parser(
        "summary",
        help="counts per class and split, subjects, faces detected, skipped files and why",
        description="Read a dataset, decode and crop its faces (cached), and summarise what was found.",
    )
    add_data_arguments(summary)
    summary.add_argument("--channels", type=int, choices=CHANNELS, default=1,
                         help="face channels: 1 grey (the CSA's input, default) or 3 colour (the "
                              "Voting ResNet's)")
    add_face_arguments(summary)
    summary.add_argument("--size", type=_positive_int, default=48, help="face size in pixels (default: 48)")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    summary.add_argument("--workers", type=_positive_int, default=None,
                         help="processes decoding and detecting (default: all cores)")
    summary.add_argument("--no-cache", action="store_true", help="neither read nor write the face cache")
    summary.add_argument("--cache-dir", default=None,
                         help="face cache folder (default: $CSA_KERAS_CACHE or ~/.cache/csa_keras)")
    summary.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def _table(summary: dict, dataset) -> list[str]:
    classes = summary["class_names"]
    splits = list(summary["split_counts"])
    shape = "x".join(str(v) for v in summary["image_shape"])
    lines = [
        f"dataset   {summary['name']} (format {summary['format']})"
        + (f" at {summary['root']}" if summary.get("root") else ""),
        f"images    {summary['n_images']} faces of {shape}",
        "",
    ]
    width = max([len("class"), *map(len, classes)])
    header = f"  {'class':<{width}}  {'total':>7}" + "".join(f"  {s:>7}" for s in splits)
    lines.append(header)
    for name in classes:
        row = f"  {name:<{width}}  {summary['class_counts'][name]:>7}"
        row += "".join(f"  {summary['split_counts'][s][name]:>7}" for s in splits)
        lines.append(row)
    total = f"  {'all':<{width}}  {summary['n_images']:>7}"
    total += "".join(f"  {sum(summary['split_counts'][s].values()):>7}" for s in splits)
    lines += [total, ""]
    n_subjects = summary["n_subjects"]
    lines.append(f"subjects  {n_subjects if n_subjects is not None else 'none recorded'}")
    if dataset.info.get("dropped_classes"):
        lines.append(f"dropped   classes with no usable image: {', '.join(dataset.info['dropped_classes'])}")
    detection = (f"faces     detected {summary.get('faces_detected', 0)}, no face {summary.get('no_face', 0)}"
                 f" (detection {'needed' if summary.get('needs_detection') else 'not needed'} by the format)")
    if summary.get("from_cache"):
        detection += ", read from the cache"
    lines.append(detection)
    lines.append(f"skipped   {dataset.skipped.total}")
    lines += [f"  {line}" for line in dataset.skipped.describe()]
    return lines


def summary_command(args: argparse.Namespace) -> int:
    settings = FaceSettings(size=args.size, colour=args.channels == 3, detect=args.detect,
                            no_face=args.no_face)
    cache_dir = False if args.no_cache else args.cache_dir
    dataset = load_dataset(
        args.data, format=args.format, settings=settings, cache_dir=cache_dir,
        workers=args.workers, progress=not args.quiet,
    )
    summary = dataset.summary()
    if args.json:
        summary["skipped_examples"] = {k: v for k, v in dataset.skipped.examples.items() if v}
        for key in ("dropped_classes", "status_counts"):
            if key in dataset.info:
                summary[key] = dataset.info[key]
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(_table(summary, dataset)))
    return 0


@entry_point("python -m csa_keras.data")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        try:
            return summary_command(args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except (OSError, FaceDetectorError) as error:
            return fail(parser, " ".join(str(error).split()) or type(error).__name__)

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
