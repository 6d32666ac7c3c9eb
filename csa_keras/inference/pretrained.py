"""The models in the box: a finished run packed as a pretrained model the package ships.

:func:`package_pretrained` turns a training run directory into a small
folder of :data:`~csa_keras.inference.loading.PRETRAINED_ROOT` (by default
the CSA's, ``csa_fer2013``; :mod:`voting_resnet.pretrained` packs the Voting
ResNet's ``vrn_fer2013``) that ``--model NAME`` and
:meth:`Predictor.pretrained` find by name: the model saved without optimizer state (a
few MB), the run's ``config.json``, the ``metrics.json`` keys prediction and
its card need, and a ``MODEL_CARD.md`` that gives the command which trained
it. Every file is written atomically, into a temporary folder renamed over
the old one at the end.

``python -m csa_keras.inference.pretrained RUN_DIR`` packs a run into the
package's folder (a maintainer's step, before building the wheel).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.evaluation.model_card import write_model_card
from csa_keras.evaluation.statistics import bootstrap_interval
from csa_keras.inference.loading import (
    CSA_MODEL,
    PRETRAINED_ROOT,
    load_model,
    model_preprocessing,
    resolve_model_path,
    run_json,
)
from csa_keras.tasks import get_task
from csa_keras.training.config import RunConfig
from csa_keras.utils import files
from csa_keras.utils.artifacts import save_model
from csa_keras.utils.cli import Parser, run_main

KEPT_METRICS = ("task", "dataset", "protocol", "class_names", "n_train", "n_val", "n_test",
                "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                "f1_weighted", "per_class_accuracy", "confusion_matrix", "psnr_db",
                "reconstruction_mse", "duplicates_removed", "precision_policy", "seconds",
                "voting", "split_after", "comparison_row", "val_accuracy")
"""The keys of the run's ``metrics.json`` the packed folder keeps."""


def _run_config(config: dict[str, Any]) -> RunConfig:
    fields = RunConfig.__dataclass_fields__
    kept = {k: v for k, v in config.items() if k in fields}
    kept["reader_options"] = tuple(tuple(pair) for pair in kept.get("reader_options") or ())
    return RunConfig(**kept)


def anonymous_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's ``config.json`` without the paths of the machine it ran on.

    The data path becomes ``path/to/<its folder name>`` (as the card's
    command writes it) and the dataset's root is left out.
    """
    config = json.loads(json.dumps(config))
    settings = config.get("config", {})
    if settings.get("data"):
        settings["data"] = f"path/to/{Path(settings['data']).name}"
    dataset = config.get("run", {}).get("dataset", {})
    dataset.pop("root", None)
    return config


WEIGHT_STORAGE = ("float32", "float16")
"""How the packed model's weights are stored: as trained, or halved (:func:`store_float16`)."""


def store_float16(model_file: str | os.PathLike) -> Path:
    """Rewrite the weights inside a ``.keras`` archive as float16, in place and atomically.

    The archive stays a plain Keras model: ``keras.models.load_model`` reads
    the float16 datasets into the model's float32 variables (the rounding,
    about 3 significant digits, moves class probabilities by about 1e-4),
    and the archive is about half the size (a ResNet-18: 43 MB to 20 MB).
    Only float32 datasets are converted; the members are deflated.
    """
    import io
    import zipfile

    import h5py

    path = Path(model_file)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if "model.weights.h5" not in members:
        raise ValueError(f"model_file {path} holds no model.weights.h5")

    def copy(source, target) -> None:
        for key, value in source.attrs.items():
            target.attrs[key] = value
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, target.create_group(name))
                continue
            data = item[()]
            if getattr(data, "dtype", None) == np.float32:
                data = data.astype(np.float16)
            dataset = target.create_dataset(name, data=data)
            for key, value in item.attrs.items():
                dataset.attrs[key] = value

    buffer = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as source, \
            h5py.File(buffer, "w") as target:
        copy(source, target)
    members["model.weights.h5"] = buffer.getvalue()
    partial = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    files.commit(partial, path)
    return path


def package_pretrained(run_dir: str | os.PathLike, command: str, licence: str,
                       dest: str | os.PathLike = PRETRAINED_ROOT / CSA_MODEL, weights: str = "float32",
                       notes: tuple[str, ...] | list[str] = ()) -> Path:
    """Pack the run in ``run_dir`` into ``dest``; returns ``dest``.

    ``command`` is the training command that made the run (written to the
    card so the model can be re-created); ``licence`` the data's terms;
    ``weights`` how the weights are stored (:data:`WEIGHT_STORAGE`);
    ``notes`` more measured lines for the card's metrics.
    """
    if weights not in WEIGHT_STORAGE:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_STORAGE)}. "
                         f"Received: weights={weights!r}")
    model_path = resolve_model_path(run_dir)
    metrics = run_json(model_path, "metrics.json")
    config = run_json(model_path, "config.json")
    if not isinstance(metrics, dict) or not isinstance(config, dict):
        raise ValueError(f"run_dir {run_dir} holds no finished run (metrics.json and config.json)")
    kept = {k: metrics[k] for k in KEPT_METRICS if k in metrics}
    run = config.get("run", {})
    kept.setdefault("precision_policy", run.get("precision_policy", "float32"))
    config = anonymous_config(config)
    cm = np.asarray(kept["confusion_matrix"])
    right = int(np.trace(cm))
    kept["accuracy_ci_low"], kept["accuracy_ci_high"] = bootstrap_interval(
        np.repeat([True, False], [right, int(cm.sum()) - right]))
    model = load_model(model_path)
    task = get_task(kept["task"])
    dest = Path(dest)
    work = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    save_model(model, work / task.model_file, preprocessing=model_preprocessing(model_path, model))
    if weights == "float16":
        store_float16(work / task.model_file)
        kept["weights_stored_as"] = "float16"
    files.write_text(work / "config.json", json.dumps(config, indent=2) + "\n")
    files.write_json(work / "metrics.json", kept)
    settings = _run_config(config.get("config", {}))
    write_model_card(work, task.title, task.describe(kept), settings, kept,
                     run.get("dataset", {}), subjects_leak=False,
                     licence=licence, recreate=command, notes=notes)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def build_parser() -> Parser:
    parser = Parser(prog="python -m csa_keras.inference.pretrained",
                    description="Pack a finished training run as the package's pretrained model.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the finished run directory of a training command")
    parser.add_argument("--command", required=True,
                        help="the training command that made the run, for the model card")
    parser.add_argument("--data-licence", required=True, metavar="TEXT",
                        help="the training data's licence terms, for the model card")
    parser.add_argument("--output", default=str(PRETRAINED_ROOT / CSA_MODEL),
                        help="the folder to write, replaced whole (default: the package's "
                             "pretrained CSA, csa_fer2013)")
    parser.add_argument("--weights", choices=WEIGHT_STORAGE, default="float32",
                        help="store the weights as trained (default) or as float16, half the size")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        dest = package_pretrained(args.run_dir, args.command, args.data_licence, args.output,
                                  weights=args.weights)
        size = sum(p.stat().st_size for p in dest.iterdir())
        print(f"{dest}: {size / 2**20:.1f} MB")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
