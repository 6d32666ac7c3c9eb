"""Train and score the CSA on one split (CSA paper §3-4).

Pretrain the sparse autoencoder on the split's training images only
(reconstruction MSE), fine-tune its encoder with a Dense(128) + softmax head
(categorical cross-entropy), evaluate on the held-out test images, and save
``autoencoder.keras`` and ``classifier.keras``. The experiment around it
(data, protocol, folds, run directory) is the shared
:func:`~csa_keras.training.experiment.run_experiment`; :func:`run_csa` runs
it for this task.

A validation set is carved from each training split (``val_fraction``,
stratified) for the best-checkpoint callbacks, so the test images decide
nothing during training. The paper's hold-out protocol has no such set; ours
keeps its 80/20 test split intact and takes validation out of the 80.

Each training phase (pretraining, fine-tuning) is a
:class:`~csa_keras.training.callbacks.TrainingPhase` kept under
``.backup/``: ``resume=True`` replays a killed run, reloading the phases it
finished and continuing the one it was in from its last completed epoch.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from csa_keras.csa.config import CSAConfig
from csa_keras.csa.model import SIDE_MULTIPLE, build_autoencoder, build_classifier
from csa_keras.data.dataset import FaceDataset
from csa_keras.data.faces import preprocessing_for
from csa_keras.data.protocols import Split
from csa_keras.evaluation.metrics import classification_metrics, reconstruction_metrics
from csa_keras.tasks import get_task
from csa_keras.training import loop, rundir
from csa_keras.training.callbacks import TrainingPhase
from csa_keras.training.experiment import SplitOutcome, run_experiment
from csa_keras.training.pipeline import as_channels, check_dataset, make_dataset, replica_batching
from csa_keras.training.rundir import TENSORBOARD
from csa_keras.utils.artifacts import save_model

MODEL_FILES = ("autoencoder.keras", "classifier.keras")
"""The models a CSA run directory holds; the classifier is the one that predicts."""


@dataclasses.dataclass
class CSADetails:
    """What the CSA report needs of one split: its models, curves and test reconstructions."""

    history: dict[str, dict[str, list[float]]]
    y_pred: np.ndarray
    reconstructions: np.ndarray
    autoencoder: keras.Model
    classifier: keras.Model
    seconds: float


def compile_autoencoder(autoencoder: keras.Model, learning_rate: float) -> keras.Model:
    """Pretraining's compile (CSA §3.2): Adam, MSE loss, and the MSE alone as a metric.

    ``loss`` also holds the sparsity penalties, so the ``mse`` metric is what
    the pretraining checkpoint is chosen on (the epoch that reconstructs
    best). Call it inside the strategy's scope.
    """
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse",
                        metrics=[keras.metrics.MeanSquaredError(name="mse")])
    return autoencoder


def fit_split(
    config: CSAConfig,
    dataset: FaceDataset,
    split: Split,
    folder: Path,
    strategy: tf.distribute.Strategy,
    *,
    verbose: int | str = "auto",
    state: Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    chief: bool = True,
) -> SplitOutcome:
    """Pretrain, fine-tune and evaluate on one split; save its two models (the task's
    :meth:`~csa_keras.tasks.Task.fit_split`).

    ``state`` (default ``folder/.backup``) holds the split's resumable
    phases; with ``resume`` a phase finished earlier is reloaded and an
    unfinished one continues from its last epoch.
    """
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    state = Path(state) if state is not None else folder / rundir.BACKUP
    images, labels, k = dataset.images, dataset.labels, dataset.num_classes
    preprocessing = preprocessing_for(dataset.class_names, images.shape[1:], config.detect)
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
    def fit_phase(model, phase: str, monitor: str, target: str, epochs: int):
        history[phase] = loop.train_phase(
            model, TrainingPhase(state / phase, monitor, resume,
                                 tensorboard=folder / TENSORBOARD / phase),
            data(train, target, "train"),
            validation_data=None if val is None else data(val, target, "validate"),
            epochs=epochs, strategy=strategy, verbose=verbose)

    if config.pretrain_epochs > 0:
        fit_phase(autoencoder, "pretrain", recon_monitor, "images", config.pretrain_epochs)

    x_test = dataset.subset(test).scaled()
    reconstructions = predict(autoencoder, test)
    recon = reconstruction_metrics(x_test, reconstructions)
    # Saved now: the classifier shares the encoder's weights, and fine-tuning changes them.
    save_model(autoencoder, folder / "autoencoder.keras", preprocessing={**preprocessing, "class_names": []})

    with strategy.scope():
        classifier = build_classifier(autoencoder.get_layer("encoder"), k,
                                      dense_units=config.dense_units)
        classifier.compile(
            optimizer=keras.optimizers.Adam(config.finetune_lr),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
    fit_phase(classifier, "finetune", monitor, "onehot", config.finetune_epochs)

    probabilities = predict(classifier, test)
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(labels[test], y_pred, dataset.class_names)
    metrics.update(recon)
    metrics.update(n_train=len(train), n_val=int(0 if val is None else len(val)),
                   n_test=len(test))

    save_model(classifier, folder / "classifier.keras", preprocessing=preprocessing)
    rundir.write_history(folder / "history.csv", history.items())
    details = CSADetails(history, y_pred, reconstructions, autoencoder, classifier,
                         time.perf_counter() - start)
    return SplitOutcome(metrics, list(history.items()), test, details)


def prepare_dataset(config: CSAConfig, dataset: FaceDataset,
                    log: Callable[[str], None] = print) -> FaceDataset:
    """Grey faces the CSA can pool and upsample back to their size, or a one-line refusal.

    Colour images are made grey (the paper works on grey faces, §3.1); the
    side must be divisible by 8 (``code6``) or 16 (``pool4``) so the
    encoder's poolings and the decoder's upsamplings return to it.
    """
    if dataset.channels == 3:
        log(f"{dataset.name}: colour images converted to grey (the CSA works on grey faces)")
        dataset = dataclasses.replace(dataset, images=as_channels(dataset.images, 1))
    check_dataset(dataset, multiple=SIDE_MULTIPLE[config.closure])
    return dataset


def run_csa(
    config: CSAConfig,
    output: str | os.PathLike | None = None,
    dataset: FaceDataset | None = None,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    resume: bool = False,
) -> dict[str, Any]:
    """The whole CSA story of one command; returns the ``metrics.json`` dict.

    The shared :func:`~csa_keras.training.experiment.run_experiment` with
    this task: ``resume`` continues the run left in ``output`` by a killed
    process (same settings); a ``dataset`` given in colour is made grey; one
    that no run can use (NaN, wrong shape, one class) is refused in one line.
    """
    return run_experiment(get_task("csa"), config, output, dataset, verbose, log, resume)
