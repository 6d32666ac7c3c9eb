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
   images that duplicate a training image exactly are dropped; the chief
   writes ``config.json`` and ``splits.json``;
4. the task trains and scores each split (``foldNN/`` under k-fold, with its
   resumable state under ``.backup/``);
5. the folds are aggregated (mean ± std, pooled confusion matrix), fold 1's
   models are copied to the top level, and ``history.csv``, ``metrics.json``
   and the task's report are written;
6. the run is closed: the chief drops the training state and its lock, every
   other worker of a multi-worker run removes its scratch folder.

Steps 1 to 3 and 6 are :func:`run_lifecycle`, which any experiment of the
project runs through with its own work in place of 4 and 5 (the Voting
ResNet's comparison of split points: :mod:`voting_resnet.comparison`).

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
from typing import Any, TypeVar

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

T = TypeVar("T")


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
    out = rundir.open_run(output, config.to_dict(), chief, resume, task_id(strategy),
                          config.RESUME_ADDS)
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


@dataclasses.dataclass
class Experiment:
    """An opened experiment, as :func:`run_lifecycle` hands it to the work it runs.

    ``out`` is the run directory on the chief, and a scratch folder of its
    own on every other worker of a multi-worker run (removed at the end):
    only the chief writes the run's files, and every worker takes part in
    each training, which its collective ops wait for. ``splits`` are the
    splits the work runs on, their test images duplicating a training image
    already dropped under ``dedupe`` (``removed`` of them); ``info`` is what
    ``config.json`` records of the run.
    """

    config: RunConfig
    out: Path
    chief: bool
    strategy: tf.distribute.Strategy
    resume: bool
    dataset: FaceDataset
    protocol: str
    splits: list[Split]
    removed: int
    info: dict[str, Any]
    started: float
    verbose: int | str = "auto"
    log: Callable[[str], None] = print

    @property
    def state(self) -> Path:
        """The folder of the resumable training state (``.backup/``), removed when the run closes."""
        return self.out / rundir.BACKUP


def run_lifecycle(config: RunConfig, work: Callable[[Experiment], T], *, name: str,
                  prepare: Callable[..., FaceDataset], colour: bool,
                  output: str | os.PathLike | None = None, dataset: FaceDataset | None = None,
                  verbose: int | str = "auto", log: Callable[[str], None] = print,
                  resume: bool = False,
                  choose: Callable[[RunConfig, list[Split]], list[Split]] | None = None,
                  finished: Callable[[Path], T | None] | None = None) -> T:
    """The life of every experiment around its ``work``: open, data, splits, records, close.

    The run directory is opened (:func:`start_run`; ``output`` defaults to
    ``runs/<name>-<timestamp>``); with ``resume``, a run ``finished`` finds
    done returns what it says without loading any data. The data is loaded
    and made to fit by ``prepare`` (:func:`dataset_and_splits`), ``choose``
    checks the splits and keeps those the work runs on (all by default), and
    ``dedupe`` drops the test images that duplicate a training image. The
    chief records the run in ``config.json`` (the settings, and under
    ``run`` the strategy, precision, protocol used, duplicates removed and
    dataset) and the splits in ``splits.json``, then ``work`` runs. At the
    end the chief drops the training state and its lock, and every other
    worker removes its scratch folder, whether the work ended or failed.
    """
    strategy, chief, out, run_info = start_run(config, output, name, resume)
    if resume and chief and finished is not None and (done := finished(out)) is not None:
        log(f"{out} is a finished run: nothing to resume")
        rundir.release(out)
        return done
    started = time.perf_counter()
    try:
        dataset, protocol, splits = dataset_and_splits(config, dataset, prepare, colour, verbose,
                                                       log, out if chief else None, resume)
        splits = choose(config, splits) if choose is not None else splits
        removed, kept = 0, []
        for split in splits:
            if config.dedupe:
                split, n = dedupe(split, dataset.images)
                removed += n
            kept.append(split)
        run_info = {**run_info, "protocol_used": protocol, "duplicates_removed": removed,
                    "dataset": dataset.summary()}
        if chief:
            files.write_text(out / "config.json", config_json(config, run=run_info))
            files.write_json(out / "splits.json", {s.name: split_indices(s) for s in kept})
        result = work(Experiment(config, out, chief, strategy, resume, dataset, protocol, kept,
                                 removed, run_info, started, verbose, log))
    finally:
        if not chief:
            rundir.close_run(out, chief=False)
    if chief:
        rundir.close_run(out)
    return result


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

    def choose(config: RunConfig, splits: list[Split]) -> list[Split]:
        task.check_splits(config, splits)
        return splits

    return run_lifecycle(config, lambda run: _experiment(task, run), name=task.name,
                         prepare=task.prepare_dataset, colour=task.colour(config), output=output,
                         dataset=dataset, verbose=verbose, log=log, resume=resume, choose=choose,
                         finished=rundir.finished_metrics)


def _experiment(task: Task, run: Experiment) -> dict[str, Any]:
    """The task's splits trained and scored, the folds aggregated, metrics and report written."""
    config, out, chief, dataset, splits, log = (run.config, run.out, run.chief, run.dataset,
                                                run.splits, run.log)
    outcomes: list[SplitOutcome] = []
    names: list[str] = []
    for i, split in enumerate(splits):
        folder = "" if len(splits) == 1 else f"fold{i + 1:02d}"
        if len(splits) > 1:
            log(f"[{split.name}] {i + 1}/{len(splits)}: train {len(split.train)}, "
                f"test {len(split.test)}")
        outcome = task.fit_split(config, dataset, split, out / folder, run.strategy,
                                 verbose=run.verbose, log=log, chief=chief, resume=run.resume,
                                 state=run.state / (folder or "split"))
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
        "protocol": run.protocol,
        "class_names": list(dataset.class_names),
        **metrics,
        **task.extra_metrics(config),
        "duplicates_removed": run.removed,
        "precision_policy": run.info["precision_policy"],
        "skipped": dataset.skipped.as_dict(),
        "seconds": round(time.perf_counter() - run.started, 2),
    }
    if "confusion_matrix" in metrics:
        cm = np.asarray(metrics["confusion_matrix"])
        right = int(np.trace(cm))
        correct = np.repeat([True, False], [right, int(cm.sum()) - right])
        if len(correct):
            metrics["accuracy_ci_low"], metrics["accuracy_ci_high"] = bootstrap_interval(correct)
    if chief:
        task.write_report(out, config, dataset, outcomes, metrics)
        write_model_card(out, task.title, task.describe(metrics), config, metrics, dataset.summary(),
                         holdout_leaks(run.protocol, dataset))
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
