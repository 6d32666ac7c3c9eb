"""Train and evaluate the CSA end to end (CSA paper §3-4, SPEC §3 and §5).

One run: load the data, split it by the chosen protocol, and for each split
pretrain the sparse autoencoder on the training images only (reconstruction
MSE), fine-tune its encoder with a Dense(128) + softmax head (categorical
cross-entropy), evaluate on the held-out test images, and write the run
directory: ``config.json``, ``autoencoder.keras``, ``classifier.keras``,
``metrics.json``, ``history.csv``, ``report.md`` and the figures.

A validation set is carved from each training split (``val_fraction``,
stratified) for the best-checkpoint callbacks, so the test images decide
nothing during training. The paper's hold-out protocol has no such set; ours
keeps its 80/20 test split intact and takes validation out of the 80.

Each training phase (pretraining, fine-tuning) of each split is a
:class:`~csa_keras.training.callbacks.TrainingPhase` kept under
``.backup/`` (issue 6): ``resume=True`` (``--resume``) replays a killed run,
reloading the phases and folds it finished and continuing the one it was in
from its last completed epoch.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset
from csa_keras.training import loop, rundir
from csa_keras.training.callbacks import TrainingPhase
from csa_keras.training.config import CSAConfig, config_json
from csa_keras.training.session import run_session
from csa_keras.training.pipeline import as_channels, check_images, make_dataset, replica_batching


@dataclasses.dataclass
class SplitResult:
    """What one split's training leaves for the report."""

    name: str
    metrics: dict[str, Any]
    history: dict[str, dict[str, list[float]]]
    test_index: np.ndarray
    y_pred: np.ndarray
    reconstructions: np.ndarray
    autoencoder: keras.Model
    classifier: keras.Model
    seconds: float


def load_data(config, progress: bool = True, colour: bool = False) -> FaceDataset:
    """The dataset a config names: a path through the readers, or the built-in data.

    ``colour`` keeps three channels (the Voting ResNet's input); the CSA
    works on grey faces (paper §3.1).
    """
    if config.data is None:
        from csa_keras.data.synthetic import make_synthetic_dataset

        return make_synthetic_dataset(
            seed=config.seed,
            n_subjects=config.synthetic_subjects,
            images_per_class=config.synthetic_images_per_class,
        )
    from csa_keras.data.faces import FaceSettings
    from csa_keras.data.loader import load_dataset

    settings = FaceSettings(colour=colour, detect=config.detect, no_face=config.no_face)
    return load_dataset(config.data, format=config.format, settings=settings, progress=progress,
                        **config.reader_kwargs())


def compile_autoencoder(autoencoder: keras.Model, learning_rate: float) -> keras.Model:
    """Pretraining's compile (CSA §3.2): Adam, MSE loss, and the MSE alone as a metric.

    ``loss`` also holds the sparsity penalties, so the ``mse`` metric is what
    the pretraining checkpoint is chosen on (the epoch that reconstructs
    best). Call it inside the strategy's scope.
    """
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse",
                        metrics=[keras.metrics.MeanSquaredError(name="mse")])
    return autoencoder


def train_split(
    config: CSAConfig,
    dataset: FaceDataset,
    split,
    folder: Path,
    strategy: tf.distribute.Strategy,
    verbose: int | str = "auto",
    state: Path | None = None,
    resume: bool = False,
) -> SplitResult:
    """Pretrain, fine-tune and evaluate on one split; save its two models.

    ``state`` (default ``folder/.backup``) holds the split's resumable
    phases; with ``resume`` a phase finished earlier is reloaded and an
    unfinished one continues from its last epoch.
    """
    from csa_keras.evaluation.metrics import classification_metrics, reconstruction_metrics
    from csa_keras.models.csa import build_autoencoder, build_classifier

    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    state = Path(state) if state is not None else folder / rundir.BACKUP
    images, labels, k = dataset.images, dataset.labels, dataset.num_classes
    train, test = np.asarray(split.train), np.asarray(split.test)
    val = np.asarray(split.val) if split.val is not None and len(split.val) else None
    batch = config.batch_size
    seed = config.seed

    def data(index, target, purpose):
        index, batching = replica_batching(index, batch, strategy, purpose)
        return make_dataset(images[index], labels[index], seed=seed, target=target,
                            num_classes=k, shuffle=purpose == "train", **batching)

    def predict(model, index):
        return loop.predict(model, data(index, "none", "predict"))[: len(index)]

    monitor = "val_loss" if val is not None else "loss"
    recon_monitor = "val_mse" if val is not None else "mse"
    history: dict[str, dict[str, list[float]]] = {}

    with strategy.scope():
        autoencoder = build_autoencoder(
            input_shape=images.shape[1:], filters=config.filters,
            sparsity=config.sparsity, closure=config.closure)
        compile_autoencoder(autoencoder, config.pretrain_lr)
    if config.pretrain_epochs > 0:
        history["pretrain"] = loop.train_phase(
            autoencoder, TrainingPhase(state / "pretrain", recon_monitor, resume),
            data(train, "images", "train"),
            validation_data=None if val is None else data(val, "images", "validate"),
            epochs=config.pretrain_epochs, strategy=strategy, verbose=verbose)

    x_test = dataset.subset(test).scaled()
    reconstructions = predict(autoencoder, test)
    recon = reconstruction_metrics(x_test, reconstructions)
    # Saved now: the classifier shares the encoder's weights, and fine-tuning changes them.
    rundir.save_model(autoencoder, folder / "autoencoder.keras")

    with strategy.scope():
        classifier = build_classifier(autoencoder.get_layer("encoder"), k,
                                      dense_units=config.dense_units)
        classifier.compile(
            optimizer=keras.optimizers.Adam(config.finetune_lr),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
    history["finetune"] = loop.train_phase(
        classifier, TrainingPhase(state / "finetune", monitor, resume),
        data(train, "onehot", "train"),
        validation_data=None if val is None else data(val, "onehot", "validate"),
        epochs=config.finetune_epochs, strategy=strategy, verbose=verbose)

    probabilities = predict(classifier, test)
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(labels[test], y_pred, dataset.class_names)
    metrics.update(recon)
    metrics.update(n_train=int(len(train)), n_val=int(0 if val is None else len(val)),
                   n_test=int(len(test)))

    rundir.save_model(classifier, folder / "classifier.keras")
    rundir.write_history(folder / "history.csv", history.items())
    return SplitResult(split.name, metrics, history, test, y_pred, reconstructions,
                       autoencoder, classifier, time.perf_counter() - start)


def check_dataset(dataset: FaceDataset, multiple: int = 1) -> None:
    """Refuse, in one line, a dataset no training run can use (issue 6, the bad-input matrix).

    Images must pass :func:`~csa_keras.training.pipeline.check_images`, be
    square with a side divisible by ``multiple`` (the CSA's poolings and
    upsamplings must return to the input size), and hold at least two
    classes (a classifier of one class has nothing to learn).
    """
    check_images(dataset.images, f"{dataset.name} images")
    height, width = dataset.images.shape[1:3]
    if height != width or height % multiple:
        raise ValueError(f"{dataset.name} images are {height}x{width}: square faces with a side "
                         f"divisible by {multiple} expected (48x48 by default)")
    present = sorted({dataset.class_names[i] for i in np.unique(dataset.labels)})
    if len(present) < 2:
        raise ValueError(f"{dataset.name} has one class ({', '.join(present) or 'none'}): "
                         "expression recognition needs at least two")


def run_csa(
    config: CSAConfig,
    output: str | os.PathLike | None = None,
    dataset: FaceDataset | None = None,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    resume: bool = False,
) -> dict[str, Any]:
    """The whole CSA story of one command; returns the ``metrics.json`` dict.

    ``resume`` continues the run left in ``output`` by a killed process
    (same settings): finished phases and folds are reloaded from
    ``.backup/``, the interrupted phase goes on from its last completed
    epoch, and ``.backup/`` is removed once the run directory is complete.
    A ``dataset`` given in colour is made grey; one that no run can use
    (NaN, wrong shape, one class) is refused in one line
    (:func:`check_dataset`).
    """
    return run_session(
        config, output, "csa",
        lambda out, strategy, chief, run_info: _run(config, out, dataset, strategy, chief, resume,
                                                    verbose, log, run_info),
        resume, log)


def _run(config: CSAConfig, out: Path, dataset: FaceDataset | None,
         strategy: tf.distribute.Strategy, chief: bool, resume: bool, verbose, log,
         run_info: dict[str, Any]) -> dict[str, Any]:
    from csa_keras.data.protocols import dedupe, make_splits

    started = time.perf_counter()
    if dataset is None:
        dataset = load_data(config, progress=verbose != 0)
    elif dataset.channels == 3:
        log(f"{dataset.name}: colour images converted to grey (the CSA works on grey faces)")
        dataset = dataclasses.replace(dataset, images=as_channels(dataset.images, 1))
    check_dataset(dataset, multiple=8 if config.closure == "code6" else 16)
    splits = make_splits(dataset, config.protocol, folds=config.folds, seed=config.seed,
                         val_fraction=config.val_fraction, test_size=config.test_size)
    run_info = {**run_info, "dataset": dataset.summary()}
    if chief:
        rundir.write_text(out / "config.json", config_json(config, run=run_info))

    results: list[SplitResult] = []
    duplicates_removed = 0
    split_record = {}
    for i, split in enumerate(splits):
        if config.dedupe:
            split, removed = dedupe(split, dataset.images)
            duplicates_removed += removed
        split_record[split.name] = split_indices(split)
        if chief:
            rundir.write_json(out / "splits.json", split_record)
        name = "" if len(splits) == 1 else f"fold{i + 1:02d}"
        if len(splits) > 1:
            log(f"[{split.name}] {i + 1}/{len(splits)}: train {len(split.train)}, "
                f"test {len(split.test)}")
        results.append(train_split(config, dataset, split, out / name, strategy, verbose,
                                   state=out / rundir.BACKUP / (name or "split"), resume=resume))
    if len(results) > 1 and chief:
        for name in ("autoencoder.keras", "classifier.keras"):
            tmp = out / f".{name}.partial.keras"
            shutil.copyfile(out / "fold01" / name, tmp)
            os.replace(tmp, out / name)
        rundir.write_history(out / "history.csv", [
            (f"{r.name}/{phase}", h) for r in results for phase, h in r.history.items()])

    metrics = summarise(config, dataset, results, duplicates_removed)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if chief:
        from csa_keras.evaluation.report import write_csa_report

        write_csa_report(out, config, dataset, results, metrics)
        rundir.write_json(out / "metrics.json", metrics)
    return metrics


def split_indices(split) -> dict[str, list[int]]:
    """A split as JSON lists, for ``splits.json`` (which images trained, validated, tested)."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    return {k: [int(i) for i in v] for k, v in parts.items() if v is not None}


def summarise(config: CSAConfig, dataset: FaceDataset, results: list[SplitResult],
              duplicates_removed: int) -> dict[str, Any]:
    """``metrics.json`` (SPEC §5): one split's metrics, or folds with mean ± std."""
    from csa_keras.evaluation.metrics import aggregate_folds

    if len(results) == 1:
        metrics = dict(results[0].metrics)
    else:
        metrics = aggregate_folds([dict(r.metrics, fold=r.name) for r in results])
        metrics["n_train"] = int(np.mean([r.metrics["n_train"] for r in results]))
        metrics["n_test"] = int(sum(r.metrics["n_test"] for r in results))
    return {
        "task": "csa",
        "dataset": dataset.name,
        "protocol": config.protocol,
        "class_names": list(dataset.class_names),
        **metrics,
        "closure": config.closure,
        "duplicates_removed": duplicates_removed,
        "skipped": dataset.skipped.as_dict(),
    }
