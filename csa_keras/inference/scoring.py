"""Scoring a trained model on any labelled data the readers know: cross-dataset checks.

A model of either task (a run directory or its ``.keras`` file) meets a
dataset through the same face preprocessing as in training: the dataset is
read by its reader, faces are detected and cropped by the model's
:class:`~csa_keras.inference.predictor.Predictor` settings (its input size,
grey or colour), and every face is classified in batches.

The model's classes and the data's need not be the same: a CK+ model knows
contempt and not neutral, FER2013 has neutral and no contempt. Only the
classes both have are scored: images of a class the model does not know are
dropped, and the probabilities of the classes the data does not have are
left out before the arg-max (the rest renormalised), so a prediction is
always a class that can be right. What was dropped, and how many images, is
written beside the metrics.

Writes ``metrics.json`` (the keys of a training run's, plus the 95% bootstrap
interval of the accuracy and what was dropped), ``report.md`` and
``confusion_matrix.png`` into the output folder. The output is checked
first (not the data or the model, not inside the data, not another run's
directory or a file of one: :func:`~csa_keras.utils.paths.check_outputs`)
and created only once the scores are there to write, so an evaluation
refused on the way leaves nothing behind.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.data.faces import FaceSettings
from csa_keras.data.loader import load_dataset
from csa_keras.evaluation.figures import plot_confusion_matrix
from csa_keras.evaluation.metrics import SCALAR_METRICS, classification_metrics
from csa_keras.evaluation.report import per_class_table, percent, skipped_section
from csa_keras.evaluation.statistics import bootstrap_interval
from csa_keras.inference.loading import ModelSource
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.run_images import run_split
from csa_keras.training import rundir
from csa_keras.utils import files
from csa_keras.utils.messages import one_of
from csa_keras.utils.paths import check_outputs


def shared_classes(model_classes, data_classes) -> list[str]:
    """The classes both know, in the model's order."""
    return [name for name in model_classes if name in set(data_classes)]


RUN_PARTS = ("train", "val", "test")
"""The parts of a run's split that ``evaluate_model(run=...)`` scores."""


def evaluate_model(model: str | os.PathLike | ModelSource, data: str | os.PathLike | None,
                   output: str | os.PathLike | None = None, format: str = "auto",
                   detect: str = "auto", no_face: str = "skip", batch_size: int = 64,
                   reader_options: dict[str, Any] | None = None, split: str | None = None,
                   run: str | os.PathLike | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score ``model`` on ``data`` (module docstring) and return the ``metrics.json`` dict.

    ``data`` ``None`` is the built-in synthetic faces; ``split`` keeps the
    images of one of the dataset's own splits (``test``: FER2013's
    PublicTest); ``output`` defaults to ``runs/evaluate-<timestamp>``.

    ``run``, a training run's directory, scores the images that run kept for
    ``split`` (``train``, ``val`` or ``test`` of its ``splits.json``), read
    from the data its ``config.json`` names and checked against what it
    recorded: two models compared on the validation images one of them chose
    its epochs on, the test images never looked at (``data`` must then be
    ``None``).
    """
    started = time.perf_counter()
    source = ModelSource.resolve(model)
    model_path = source.path
    output = output or rundir.default_output("evaluate")
    check_outputs({"output": output}, {"data": data, "model": model_path, "run": run}, folders=("output",),
                  results=("output",))
    files.creatable_folder(output, "output")
    predictor = Predictor.from_run(source, detect=detect, no_face=no_face,
                                   batch_size=batch_size)
    settings = FaceSettings(size=predictor.settings.size, colour=predictor.channels == 3,
                            detect=detect, no_face=no_face)
    if run is not None:
        if data is not None:
            raise ValueError(f"data must be None when run is given (the run's config.json names its "
                             f"data). Received: data={str(data)!r}")
        if split not in RUN_PARTS:
            raise ValueError(one_of("split", list(RUN_PARTS), split))
        dataset, where = run_split(run, (predictor.settings.size, predictor.settings.size,
                                         predictor.channels), split)
        if progress:
            log(f"scoring the {len(dataset)} {split} images of {where}")
    else:
        dataset = load_dataset(data, format=format, settings=settings, progress=progress,
                               **(reader_options or {}))
        if split is not None:
            present = [] if dataset.splits is None else sorted(set(dataset.splits))
            if split not in present:
                raise ValueError(one_of("split", present or ["(the data has no splits)"], split))
            dataset = dataset.subset(np.flatnonzero(dataset.splits == split))
    shared = shared_classes(predictor.class_names, dataset.class_names)
    if len(shared) < 2:
        raise ValueError(f"the model's classes ({', '.join(predictor.class_names)}) and the data's "
                         f"({', '.join(dataset.class_names)}) share {len(shared)}: at least two "
                         "are needed to score")
    names = np.asarray(dataset.class_names)[dataset.labels]
    keep = np.flatnonzero(np.isin(names, shared))
    data_only = [c for c in dataset.class_names if c not in shared]
    model_only = [c for c in predictor.class_names if c not in shared]
    if data_only:
        log(f"{dataset.name}: {len(dataset) - len(keep)} images of {', '.join(data_only)} "
            "dropped (the model does not know these classes)")
    columns = [predictor.class_names.index(c) for c in shared]
    probabilities = predictor.classify(dataset.images[keep])[:, columns]
    y_true = np.asarray([shared.index(n) for n in names[keep]])
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred, shared)
    low, high = bootstrap_interval(y_pred == y_true)
    metrics = {
        "task": predictor.task,
        "model": str(model_path),
        "dataset": dataset.name,
        "protocol": "evaluate",
        "split": split,
        "run": None if run is None else str(run),
        "class_names": shared,
        "n_test": len(keep),
        **metrics,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "dropped_data_classes": {c: int(np.sum(names == c)) for c in data_only},
        "dropped_model_classes": model_only,
        "skipped": dataset.skipped.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    out = rundir.prepare(output)
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), shared,
                          out / "confusion_matrix.png", title=f"{dataset.name}, shared classes")
    _write_report(out, metrics, dataset)
    files.write_json(out / "metrics.json", metrics)
    return metrics


def _write_report(out: Path, metrics: dict[str, Any], dataset) -> Path:
    dropped = metrics["dropped_data_classes"]
    lines = [
        f"# {metrics['model']} on {metrics['dataset']}",
        "",
        f"- task `{metrics['task']}`; data `{dataset.name}` (format `{dataset.format}`), "
        f"{metrics['n_test']} faces scored",
        f"- classes scored (both know them): {', '.join(metrics['class_names'])}",
        "- images dropped (classes the model does not know): "
        + (", ".join(f"{c} {n}" for c, n in dropped.items()) or "none"),
        "- model classes left out of the arg-max (the data has none): "
        + (", ".join(metrics["dropped_model_classes"]) or "none"),
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {label} | {percent(metrics.get(key))} |" for key, label in SCALAR_METRICS.items()
          if key in metrics],
        f"| accuracy, 95% bootstrap interval | {percent(metrics['accuracy_ci_low'])} – "
        f"{percent(metrics['accuracy_ci_high'])} |",
        "",
        *per_class_table(metrics["per_class_accuracy"]),
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Skipped inputs",
        "",
        skipped_section(dataset.skipped.as_dict(), dataset.skipped.describe()),
    ]
    return files.write_text(out / "report.md", "\n".join(lines) + "\n")
