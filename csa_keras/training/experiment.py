"""One experiment, whatever the task: data, protocol, the splits' training, the run directory.

Both training commands tell the same story around a task's own training of
one split (:meth:`csa_keras.tasks.Task.fit_split`):

1. the strategy, seeds and precision policy are set and the run directory is
   opened (an unfinished one is refused without ``resume``; a finished one
   given with ``resume`` returns its metrics);
2. the dataset is loaded (a path through the readers, or the built-in faces)
   and the task makes it fit its input or refuses it in one line;
3. the protocol gives the splits (``predefined`` on data without a split of
   its own falls back to ``holdout``, and says so); with ``dedupe`` the test
   images that duplicate a training image exactly are dropped;
4. the task trains and scores each split (``foldNN/`` under k-fold, with its
   resumable state under ``.backup/``);
5. the folds are aggregated (mean ± std, pooled confusion matrix), fold 1's
   models are copied to the top level, and ``config.json``, ``splits.json``,
   ``history.csv``, ``metrics.json`` and the task's report are written.

Every file is written atomically (:mod:`csa_keras.utils.files`), so a run
killed at any moment leaves its earlier artifacts whole and ``--resume``
continues it.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset
from csa_keras.data.faces import FaceSettings
from csa_keras.data.loader import load_dataset
from csa_keras.data.protocols import Split, dedupe, holdout_leaks, make_splits
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.evaluation.metrics import aggregate_folds
from csa_keras.evaluation.model_card import write_model_card
from csa_keras.evaluation.statistics import bootstrap_interval
from csa_keras.tasks import Task
from csa_keras.training import fingerprint, rundir
from csa_keras.training.config import RunConfig, config_json
from csa_keras.training.strategy import (
    describe,
    get_strategy,
    is_chief,
    seed_everything,
    set_precision,
    task_id,
)
from csa_keras.utils import files
from csa_keras.utils.paths import check_outputs


@dataclasses.dataclass
class SplitOutcome:
    """What a task's training of one split leaves for the experiment.

    ``metrics`` are the split's keys of ``metrics.json``; ``histories`` the
    ``(phase, Keras history)`` pairs of ``history.csv``; ``test_index`` the
    test images; ``details`` whatever the task's report needs of the split
    (its models, predictions, curves), kept for the first split only.
    """

    metrics: dict[str, Any]
    histories: list[tuple[str, dict[str, list[float]]]]
    test_index: np.ndarray
    details: Any = None


def load_data(config: RunConfig, progress: bool = True, colour: bool = False) -> FaceDataset:
    """The dataset a config names: a path through the readers, or the built-in faces.

    ``colour`` keeps three channels (the Voting ResNet's input); the CSA
    works on grey faces (its paper §3.1).
    """
    if config.data is None:
        return make_synthetic_dataset(seed=config.seed, n_subjects=config.synthetic_subjects,
                                      images_per_class=config.synthetic_images_per_class)
    settings = FaceSettings(colour=colour, detect=config.detect, no_face=config.no_face)
    return load_dataset(config.data, format=config.format, settings=settings, progress=progress,
                        **config.reader_kwargs())


def split_indices(split: Split) -> dict[str, list[int]]:
    """A split as JSON lists, for ``splits.json`` (which images trained, validated, tested)."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    return {k: [int(i) for i in v] for k, v in parts.items() if v is not None}


def start_run(config: RunConfig, output: str | os.PathLike | None, name: str,
              resume: bool) -> tuple[tf.distribute.Strategy, bool, Path, dict[str, Any]]:
    """Before any data: settings checked, strategy, seeds and precision set, the run directory opened.

    An ``output`` that is the data, lies inside it or holds it is refused
    (:func:`~csa_keras.utils.paths.check_outputs`): the next run would read
    this one's figures as class images.

    The chief records the files of the data in ``data.json``
    (:mod:`~csa_keras.training.fingerprint`); with ``resume`` it first
    refuses, in one line, data whose files changed since the run started.

    Returns the strategy, whether this process is the chief, the folder it
    writes (``output``, default ``runs/<name>-<timestamp>``) and what
    ``config.json`` records of the run so far.
    """
    config.validate()
    strategy = get_strategy(config.strategy)
    deterministic = seed_everything(config.seed, config.deterministic)
    policy = set_precision(config.precision)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size must be divisible by the {replicas} replicas. "
                         f"Received: batch_size={config.batch_size}")
    chief = is_chief(strategy)
    output = output or rundir.default_output(name)
    check_outputs({"output": output}, {"data": config.data}, folders=("output",))
    out = rundir.open_run(output, config.to_dict(), chief, resume, task_id(strategy))
    if chief:
        synthetic = {"seed": config.seed, "subjects": config.synthetic_subjects,
                     "images_per_class": config.synthetic_images_per_class}
        try:
            fingerprint.check_files(out, fingerprint.data_catalogue(config.data, synthetic), resume)
        except ValueError:
            rundir.release(out)
            raise
    return strategy, chief, out, {"strategy": describe(strategy), "precision_policy": policy,
                                  "op_determinism": deterministic}


def dataset_and_splits(config: RunConfig, dataset: FaceDataset | None,
                       prepare: Callable[..., FaceDataset], colour: bool, verbose, log,
                       out: Path | None = None, resume: bool = False
                       ) -> tuple[FaceDataset, str, list[Split]]:
    """The dataset (loaded unless given, then made to fit the task by ``prepare``), the protocol
    used and its splits; ``predefined`` on data without a split of its own falls back to
    ``holdout``, and says so.

    Given the run directory ``out`` (the chief's), the dataset is recorded in
    its ``data.json``, and with ``resume`` a dataset that differs from the
    recorded one (a class added, images removed) is refused in one line.
    """
    if dataset is None:
        dataset = load_data(config, progress=verbose != 0, colour=colour)
    dataset = prepare(config, dataset, log)
    if out is not None:
        fingerprint.check_dataset(out, dataset, resume)
    protocol = config.protocol
    if protocol == "predefined" and dataset.splits is None:
        log(f"{dataset.name} has no predefined split: using holdout")
        protocol = "holdout"
    splits = make_splits(dataset, protocol, folds=config.folds, seed=config.seed,
                         val_fraction=config.val_fraction,
                         val_per_class=getattr(config, "val_per_class", None),
                         test_size=config.test_size)
    return dataset, protocol, splits


def run_experiment(task: Task, config: RunConfig, output: str | os.PathLike | None = None,
                   dataset: FaceDataset | None = None, verbose: int | str = "auto",
                   log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """Run ``task`` as ``config`` says and return the ``metrics.json`` dict.

    ``output`` defaults to ``runs/<task>-<timestamp>``. ``dataset`` replaces
    the data ``config`` names (notebooks and tests pass arrays). ``resume``
    continues the run a killed process left in ``output`` with the same
    settings: finished phases and folds are reloaded from ``.backup/``, the
    interrupted phase goes on from its last completed epoch, and a finished
    run returns its metrics without training again.
    """
    strategy, chief, out, run_info = start_run(config, output, task.name, resume)
    if resume and chief and (done := rundir.finished_metrics(out)) is not None:
        log(f"{out} is a finished run: nothing to resume")
        rundir.release(out)
        return done
    try:
        metrics = _experiment(task, config, out, dataset, strategy, chief, resume, verbose, log,
                              run_info)
    finally:
        if not chief:
            rundir.close_run(out, chief=False)
    if chief:
        rundir.close_run(out)
    return metrics


def _experiment(task: Task, config: RunConfig, out: Path, dataset: FaceDataset | None,
                strategy: tf.distribute.Strategy, chief: bool, resume: bool, verbose, log,
                run_info: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    dataset, protocol, splits = dataset_and_splits(config, dataset, task.prepare_dataset,
                                                   task.colour(config), verbose, log,
                                                   out if chief else None, resume)
    task.check_splits(config, splits)
    run_info = {**run_info, "protocol_used": protocol, "dataset": dataset.summary()}
    if chief:
        files.write_text(out / "config.json", config_json(config, run=run_info))

    outcomes: list[SplitOutcome] = []
    names: list[str] = []
    record: dict[str, dict[str, list[int]]] = {}
    removed = 0
    for i, split in enumerate(splits):
        if config.dedupe:
            split, n = dedupe(split, dataset.images)
            removed += n
        record[split.name] = split_indices(split)
        if chief:
            files.write_json(out / "splits.json", record)
        folder = "" if len(splits) == 1 else f"fold{i + 1:02d}"
        if len(splits) > 1:
            log(f"[{split.name}] {i + 1}/{len(splits)}: train {len(split.train)}, "
                f"test {len(split.test)}")
        outcome = task.fit_split(config, dataset, split, out / folder, strategy, verbose=verbose,
                                 log=log, chief=chief, resume=resume,
                                 state=out / rundir.BACKUP / (folder or "split"))
        outcomes.append(outcome if i == 0 else dataclasses.replace(outcome, details=None))
        names.append(split.name)

    if len(outcomes) == 1:
        metrics = dict(outcomes[0].metrics)
    else:
        metrics = aggregate_folds([dict(o.metrics, fold=n) for o, n in zip(outcomes, names)])
        for key in ("n_train", "n_val"):
            if key in outcomes[0].metrics:
                metrics[key] = round(np.mean([o.metrics[key] for o in outcomes]))
        metrics = task.aggregate(config, outcomes, names, metrics)
        if chief:
            _copy_first_fold(out, task.run_files)
            rundir.write_history(out / "history.csv", [
                (f"{n}/{phase}", h) for o, n in zip(outcomes, names) for phase, h in o.histories])
    metrics = {
        "task": task.name,
        "dataset": dataset.name,
        "protocol": protocol,
        "class_names": list(dataset.class_names),
        **metrics,
        **task.extra_metrics(config),
        "duplicates_removed": removed,
        "precision_policy": run_info["precision_policy"],
        "skipped": dataset.skipped.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if "confusion_matrix" in metrics:
        cm = np.asarray(metrics["confusion_matrix"])
        right = int(np.trace(cm))
        correct = np.repeat([True, False], [right, int(cm.sum()) - right])
        if len(correct):
            metrics["accuracy_ci_low"], metrics["accuracy_ci_high"] = bootstrap_interval(correct)
    if chief:
        task.write_report(out, config, dataset, outcomes, metrics)
        write_model_card(out, task.title, task.description, config, metrics, dataset.summary(),
                         holdout_leaks(protocol, dataset))
        files.write_json(out / "metrics.json", metrics)
    return metrics


def _copy_first_fold(out: Path, names: tuple[str, ...]) -> None:
    """Fold 1's models at the top of the run directory, each copied then renamed into place."""
    for name in names:
        source = out / "fold01" / name
        if source.is_file():
            tmp = files.temporary_name(out / name)
            shutil.copyfile(source, tmp)
            files.commit(tmp, out / name)
