"""A comparison's best model packed as a model in the box: ``python -m voting_resnet.pretrained``.

The comparison (:mod:`voting_resnet.comparison`) trains the plain ResNet-18
and voters on one split and scores each on validation and test. The model
to ship is the row with the best **validation** accuracy, baseline or voter
(:func:`chosen_row`; the test images never choose). :func:`comparison_run`
turns that row into a run-like folder (its model, with the row's vote, as
``model.keras``; ``metrics.json`` of its test predictions; the comparison's
``config.json`` narrowed to the row), and
:func:`~csa_keras.inference.pretrained.package_pretrained` packs it with
its model card, the weights stored as float16 (a ResNet-18 in 20 MB)::

    python -m voting_resnet.pretrained runs/compare-fer2013 --output csa_keras/pretrained/vrn_fer2013 \\
        --command "python -m voting_resnet.compare --data path/to/fer2013 --recipe converge --dedupe" \\
        --data-licence "..."
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.data.faces import preprocessing_for
from csa_keras.evaluation.metrics import classification_metrics
from csa_keras.utils import files
from csa_keras.utils.artifacts import save_model
from csa_keras.utils.cli import Parser, run_main
from voting_resnet.comparison_stats import model_folder, row_key


def chosen_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the best validation accuracy; ties go to the earlier row (the cheaper model)."""
    scored = [r for r in rows if r.get("val_accuracy") is not None]
    if not scored:
        raise ValueError("rows hold no validation accuracy to choose on")
    return max(scored, key=lambda r: (r["val_accuracy"], -rows.index(r)))


def _read(path: Path) -> Any:
    try:
        return files.read_json(path)
    except files.FileTooLarge:
        raise
    except (OSError, ValueError):
        raise ValueError(f"comparison_dir {path.parent}: {path.name} is missing or unreadable") from None


def comparison_run(comparison_dir: str | os.PathLike, out: str | os.PathLike,
                   key: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the run-like folder of one row (default :func:`chosen_row`) into ``out``.

    Returns the folder and the row. Needs the comparison's ``config.json``,
    ``comparison.json``, ``predictions.json`` and the row's saved model.
    """
    from voting_resnet.models.resnet18 import build_voting_resnet
    from voting_resnet.training import MODEL_FILE, transfer_weights

    source, out = Path(comparison_dir), Path(out)
    rows = _read(source / "comparison.json")
    saved = _read(source / "config.json")
    predictions = _read(source / "predictions.json")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"comparison_dir {source}: comparison.json holds no rows")
    row = chosen_row(rows) if key is None else next((r for r in rows if row_key(r) == key), None)
    if row is None:
        raise ValueError(f"key must name a row of {source / 'comparison.json'} "
                         f"({', '.join(row_key(r) for r in rows)}). Received: key={key!r}")
    predicted = (predictions.get("rows") or {}).get(row_key(row))
    if predicted is None:
        raise ValueError(f"comparison_dir {source}: predictions.json has no row {row_key(row)}")
    folder = source / model_folder(row["training"], row["split_after"])
    dataset = saved.get("run", {}).get("dataset", {})
    names = dataset.get("class_names")
    if not names:
        raise ValueError(f"comparison_dir {source}: config.json names no classes")
    shape = tuple(dataset.get("image_shape") or (48, 48, 3))
    voting = "soft" if row["voting"] == "none" else row["voting"]
    model = build_voting_resnet(num_classes=len(names), input_shape=shape,
                                split_after=row["split_after"], voting=voting)
    transfer_weights(model, folder / MODEL_FILE)
    out.mkdir(parents=True, exist_ok=True)
    detect = saved.get("config", {}).get("detect", "auto")
    save_model(model, out / MODEL_FILE, preprocessing=preprocessing_for(names, shape, detect))
    labels = np.asarray(predictions["labels"])
    metrics = classification_metrics(labels, np.asarray(predicted), names)
    config = saved.get("config", {})
    metrics.update(
        task="voting_resnet", dataset=dataset.get("name"), protocol=saved.get("run", {}).get(
            "protocol_used", config.get("protocol")),
        n_train=None, n_val=None, n_test=len(labels),
        duplicates_removed=saved.get("run", {}).get("duplicates_removed"),
        precision_policy=saved.get("run", {}).get("precision_policy", "float32"),
        voting=voting, split_after=row["split_after"], comparison_row=row_key(row),
        val_accuracy=row["val_accuracy"])
    splits = _read(source / "splits.json")
    split = next(iter(splits.values()), {}) if isinstance(splits, dict) else {}
    if isinstance(split, dict):
        metrics["n_train"] = len(split.get("train") or []) or None
        metrics["n_val"] = len(split.get("val") or []) or None
    files.write_json(out / "metrics.json", metrics)
    narrowed = {**saved, "config": {**config, "split_after": [row["split_after"]], "voting": voting}}
    files.write_text(out / "config.json", json.dumps(narrowed, indent=2) + "\n")
    return out, row


def package_comparison(comparison_dir: str | os.PathLike, command: str, licence: str,
                       dest: str | os.PathLike, key: str | None = None,
                       weights: str = "float16", notes: Sequence[str] = ()) -> tuple[Path, dict]:
    """Pack one row of a comparison (default: the one chosen on validation) into ``dest``."""
    from csa_keras.evaluation.report import percent
    from csa_keras.inference.pretrained import package_pretrained

    with tempfile.TemporaryDirectory() as scratch:
        run, row = comparison_run(comparison_dir, Path(scratch) / "run", key)
        what = ("the plain ResNet-18" if row["split_after"] == 0
                else f"the voter after module {row['split_after']} ({row['voting']} vote)")
        chosen = (f"chosen among the comparison's rows on validation accuracy: {what}, "
                  f"{row['training']}, validation {percent(row['val_accuracy'])}")
        dest = package_pretrained(run, command, licence, dest, weights=weights,
                                  notes=[chosen, *notes])
    return dest, row


def build_parser() -> Parser:
    from csa_keras.inference.pretrained import WEIGHT_STORAGE

    parser = Parser(prog="python -m voting_resnet.pretrained",
                    description="Pack the model a comparison chose on validation as a model in "
                                "the box, with its model card.")
    parser.add_argument("comparison_dir", metavar="COMPARISON_DIR",
                        help="the --output of python -m voting_resnet.compare")
    parser.add_argument("--output", required=True, help="the folder to write, replaced whole")
    parser.add_argument("--command", required=True,
                        help="the command that made the comparison, for the model card")
    parser.add_argument("--data-licence", required=True, metavar="TEXT",
                        help="the training data's licence terms, for the model card")
    parser.add_argument("--row", dest="key",
                        help="training/split_after/voting of another row (default: the best on "
                             "validation)")
    parser.add_argument("--weights", choices=WEIGHT_STORAGE, default="float16",
                        help="how the weights are stored (default float16, half the size)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        dest, row = package_comparison(args.comparison_dir, args.command, args.data_licence,
                                       args.output, args.key, args.weights)
        size = sum(p.stat().st_size for p in Path(dest).iterdir())
        print(f"{dest}: {row_key(row)}, {size / 2**20:.1f} MB")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
