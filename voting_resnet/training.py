"""Train and score the Voting ResNet on one split (VRN paper §3.3-4).

The recipe: Adam at 2e-4 decayed once per epoch (0.95 RAF-DB, 0.65
AffectNet), batch 135, online augmentation in training only, cross-entropy
on every crop's logits. With several split points a split reproduces the
paper's protocol: each is trained on the training set and scored on the
validation set (soft and hard voting, the paper's Table 3), the best on
validation is retrained on train + validation, and that model is evaluated
on the test set and saved as ``model.keras``. The experiment around it
(data, protocol, folds, run directory) is the shared
:func:`~csa_keras.training.experiment.run_experiment`; :func:`run_vrn` runs
it for this task.

Augmentation runs in the ``tf.data`` pipeline on training batches only, as a
``keras.Sequential`` of preprocessing layers; the saved model holds none of
it, so prediction and export never see a random layer.

Every training of a split point is a resumable
:class:`~csa_keras.training.TrainingPhase` under ``.backup/``: ``resume=True``
reloads the split points, retrainings and folds a killed run finished and
continues the one it was in from its last completed epoch.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset
from csa_keras.data.faces import preprocessing_for
from csa_keras.data.protocols import Split
from csa_keras.evaluation import classification_metrics
from csa_keras.inference.loading import load_model, model_location
from csa_keras.tasks import get_task
from csa_keras.training import (
    BACKUP,
    TENSORBOARD,
    SelectionScore,
    SplitOutcome,
    TrainingPhase,
    as_channels,
    check_dataset,
    check_images,
    make_dataset,
    predict_dataset,
    replica_batching,
    run_experiment,
    train_phase,
    write_history,
)
from csa_keras.utils.artifacts import save_model
from voting_resnet.config import VRNConfig
from voting_resnet.layers.voting import hard_vote, soft_vote
from voting_resnet.losses import CropCrossEntropy
from voting_resnet.models.resnet18 import build_voting_resnet

MODEL_FILE = "model.keras"
"""The model a Voting ResNet run directory holds."""

SELECTION = "val_selection"
"""The history key of the epoch selection: validation vote accuracy, ties to the lower loss."""


def build_augmentation(channels: int = 3, seed: int = 0, flip: bool = False) -> keras.Sequential:
    """The paper's online augmentation (§3.3) as Keras preprocessing layers.

    Random resized crop (a zoom into 80-100% of the side, then a shift),
    colour jitter (brightness, contrast and, for colour input, saturation),
    translation, rotation (±10°) and random erasing, on [0, 1] images.
    ``flip`` adds a horizontal flip first, which the paper does not list: this
    project's ``converge`` recipe uses it (a face's expression is symmetric
    enough that a mirrored face keeps its label).
    """
    jitter = dict(brightness_factor=0.2, contrast_factor=0.2)
    if channels == 3:
        jitter["saturation_factor"] = 0.2
    mirror = [keras.layers.RandomFlip("horizontal", seed=seed + 5, name="flip")] if flip else []
    return keras.Sequential([
        *mirror,
        keras.layers.RandomZoom((-0.2, 0.0), seed=seed, name="resized_crop"),
        keras.layers.RandomColorJitter(value_range=(0, 1), seed=seed + 1, name="colour_jitter",
                                       **jitter),
        keras.layers.RandomTranslation(0.1, 0.1, seed=seed + 2, name="translation"),
        keras.layers.RandomRotation(10 / 360, seed=seed + 3, name="rotation"),
        keras.layers.RandomErasing(factor=(0.5, 0.5), scale=(0.02, 0.2), value_range=(0, 1),
                                   seed=seed + 4, name="erasing"),
    ], name="augmentation")


def balanced_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                     map_fn=None) -> tuple[tf.data.Dataset, int]:
    """Class-balanced batches: minority classes over-sampled, majority ones down-sampled.

    Each class is an endlessly repeated, shuffled stream and batches draw from
    the streams with equal weights (``tf.data.Dataset.sample_from_datasets``),
    so an epoch of ``ceil(N / batch_size)`` full batches sees about as many
    images as the data has, equally many of each class in expectation, and
    over epochs every image of a large class is used. ``map_fn`` runs on each
    batch (augmentation). Returns the endless dataset and its steps per epoch.
    """
    streams = []
    for k in np.unique(labels):
        index = np.flatnonzero(labels == k)
        ds = make_dataset(images[index], labels[index], batch_size=1, shuffle=True,
                          seed=seed + int(k), target="labels")
        streams.append(ds.unbatch().repeat())
    mixed = tf.data.Dataset.sample_from_datasets(streams, seed=seed)
    mixed = mixed.batch(batch_size, drop_remainder=True)
    if map_fn is not None:
        mixed = mixed.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
    steps = max(1, math.ceil(len(labels) / batch_size))
    return mixed.prefetch(tf.data.AUTOTUNE), steps


def transfer_weights(model: keras.Model, source: str | os.PathLike) -> dict[str, int]:
    """``init_from``: copy weights layer by layer where names and shapes agree.

    ``source`` is a ``.keras`` model, a run directory holding ``model.keras``,
    or the name of a model in the box (``vrn_fer2013``).
    Every split point has the same weights (the crop layer has none), so any
    of them initialises any other; a head for another number of classes is
    left as initialised (RAF-DB starting from AffectNet's 8-class model).
    The file is loaded with Keras ``safe_mode`` (no code in it runs), and a
    file of another task (a CSA model), a truncated or a non-model file ends
    in one ``ValueError`` line naming it.
    """
    path = model_location(source)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ValueError(f"init_from {source}: no {MODEL_FILE} there")
    try:
        donor = load_model(path)
    except ValueError as error:
        raise ValueError(f"init_from {source} is not a Keras model: {error}") from None
    copied = skipped = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            donor_layer = donor.get_layer(layer.name)
        except ValueError:
            skipped += 1
            continue
        weights = donor_layer.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            copied += 1
        else:
            skipped += 1
    if copied == 0:
        raise ValueError(f"init_from {source}: no layer of it matches this model")
    return {"layers_copied": copied, "layers_skipped": skipped}


def crop_logits(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's ``(N, V, K)`` crop logits on uint8 or [0, 1] images.

    Images of another shape than the model's input, or holding NaN, are
    refused in one line (:func:`~csa_keras.training.pipeline.check_images`).
    """
    check_images(images, shape=model.input_shape[1:])
    index, batching = replica_batching(np.arange(len(images)), batch_size,
                                       model.distribute_strategy, "predict")
    ds = make_dataset(images[index], target="none", **batching)
    return predict_dataset(model, ds)["crop_logits"][: len(images)]


def vote_metrics(logits: np.ndarray, labels: np.ndarray, class_names, voting: str) -> dict:
    """Classification metrics of the chosen vote, plus soft and hard accuracy."""
    soft = soft_vote(logits).argmax(axis=1)
    hard = hard_vote(logits).argmax(axis=1)
    metrics = classification_metrics(labels, soft if voting == "soft" else hard, class_names)
    metrics["accuracy_soft"] = float(np.mean(soft == labels))
    metrics["accuracy_hard"] = float(np.mean(hard == labels))
    metrics["voting"] = voting
    return metrics


class _LogRate(keras.callbacks.Callback):
    """Writes the rate of the epoch's last step to the history (``learning_rate``)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


def learning_rate(config: VRNConfig, steps_per_epoch: int, epochs: int):
    """The optimizer's rate and the callback that sets or logs it (``config.schedule``).

    ``exponential``: ``lr * lr_decay ** epoch``, once per epoch (the paper's
    §3.3); ``cosine``: Keras's :class:`~keras.optimizers.schedules.CosineDecay`
    with a linear warm-up from ``lr / 25`` to ``lr`` over ``warmup_epochs``,
    then down to zero at the last step of ``epochs``, set every step (a
    one-cycle schedule, Smith and Topin). The step count lives in the
    optimizer, so a resumed run continues the curve where it stopped.
    """
    if config.schedule == "exponential":
        return config.lr, keras.callbacks.LearningRateScheduler(
            lambda epoch, _: config.lr * config.lr_decay ** epoch)
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, round(config.warmup_epochs * steps_per_epoch))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.lr / 25 if warmup else config.lr,
        decay_steps=total - warmup, alpha=0.0,
        warmup_target=config.lr if warmup else None, warmup_steps=warmup)
    return schedule, _LogRate()


@dataclasses.dataclass
class FitResult:
    """One trained model: its split point, weights, Keras history, wall time and init."""

    split_after: int
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    init: dict[str, int] | None = None
    best_epoch: int | None = None


def compile_voting_resnet(model: keras.Model, learning_rate,
                          weight_decay: float = 0.0, label_smoothing: float = 0.0) -> keras.Model:
    """The training compile (VRN §3.3): Adam, cross-entropy on every crop, vote accuracy.

    ``learning_rate`` is a number or a Keras schedule. With ``weight_decay``
    the optimizer is AdamW (decoupled decay, Loshchilov and Hutter), kept off
    the batch normalisation's scale and shift; ``label_smoothing`` smooths
    every crop's target. The ``vote`` output has no loss; it is scored by
    accuracy. Call it inside the strategy's scope.
    """
    if weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss={"crop_logits": CropCrossEntropy(label_smoothing=label_smoothing), "vote": None},
        metrics={"vote": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
    )
    return model


def fit_model(config: VRNConfig, split_after: int, images: np.ndarray, labels: np.ndarray,
              num_classes: int, folder: Path, strategy: tf.distribute.Strategy,
              val: tuple[np.ndarray, np.ndarray] | None = None,
              verbose: int | str = "auto", state: Path | None = None,
              resume: bool = False, epochs: int | None = None,
              images_per_epoch: int | None = None) -> FitResult:
    """Build, optionally initialise (``init_from``), and train one Voting ResNet.

    The model trains on the crop logits (:class:`~voting_resnet.losses.CropCrossEntropy`);
    the ``vote`` output has no loss and is scored by accuracy (history keys
    ``loss``, ``vote_accuracy``, their ``val_`` twins, ``learning_rate`` and
    ``epoch_seconds``). The learning rate follows ``config.schedule``
    (:func:`learning_rate`). With validation data the
    weights of the epoch with the best validation vote accuracy are restored,
    ties going to the lower validation loss (the paper selects "based on the
    classification accuracy on the validation set", §3.3; history key
    ``val_selection``); without, the epoch of the lowest training loss.
    ``epochs`` replaces ``config.epochs`` (a retraining for the selected
    number of epochs); ``images_per_epoch`` makes an epoch that many
    training images of an endless reshuffled stream instead of one pass
    (a short fine-tuning).
    ``state`` keeps the resumable phase (:class:`~csa_keras.training.callbacks.TrainingPhase`);
    without one, a temporary ``folder/.backup`` is used and removed, so
    ``folder`` is left as it was found.
    """
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    init = None
    with strategy.scope():
        model = build_voting_resnet(num_classes=num_classes, input_shape=images.shape[1:],
                                    split_after=split_after, voting=config.voting)
        if config.init_from:
            init = transfer_weights(model, config.init_from)
    augment = (build_augmentation(images.shape[-1], config.seed, config.flip)
               if config.augment else None)

    def with_targets(x, y):
        if augment is not None:
            x = augment(x, training=True)
        return x, {"crop_logits": y, "vote": y}

    if config.balance:
        train_ds, steps = balanced_dataset(images, labels, config.batch_size, config.seed,
                                           map_fn=with_targets)
    else:
        index, batching = replica_batching(np.arange(len(labels)), config.batch_size,
                                           strategy, "train")
        train_ds = make_dataset(images[index], labels[index], shuffle=True, seed=config.seed,
                                target="labels", map_fn=with_targets, **batching)
        steps = None
        if images_per_epoch:
            train_ds = train_ds.repeat()
            steps = max(1, images_per_epoch // config.batch_size)
    if steps:
        steps_per_epoch = steps
    elif batching.get("drop_remainder"):
        steps_per_epoch = len(index) // config.batch_size
    else:
        steps_per_epoch = math.ceil(len(index) / config.batch_size)
    schedule, rate_callback = learning_rate(config, steps_per_epoch, epochs or config.epochs)
    with strategy.scope():
        compile_voting_resnet(model, schedule, config.weight_decay, config.label_smoothing)
    val_ds = None
    if val is not None and len(val[1]):
        index, batching = replica_batching(np.arange(len(val[1])), config.batch_size,
                                           strategy, "validate")
        val_ds = make_dataset(val[0][index], val[1][index], target="labels",
                              map_fn=lambda x, y: (x, {"crop_logits": y, "vote": y}),
                              **batching)
    scratch = state is None
    where = folder / BACKUP / "train" if scratch else state
    logs = None if scratch else folder / TENSORBOARD / where.name
    if val_ds is not None:
        phase = TrainingPhase(where, SELECTION, resume and not scratch, backup=not scratch,
                              mode="max", selection=SelectionScore(SELECTION, "val_vote_accuracy",
                                                                   "val_loss"),
                              tensorboard=logs)
    else:
        phase = TrainingPhase(where, "loss", resume and not scratch, backup=not scratch,
                              tensorboard=logs)
    history = train_phase(model, phase, train_ds, validation_data=val_ds,
                          epochs=epochs or config.epochs, steps_per_epoch=steps,
                          callbacks=[rate_callback],
                          strategy=strategy, verbose=verbose)
    best_epoch = phase.best_epoch()
    if scratch:
        shutil.rmtree(folder / BACKUP, ignore_errors=True)
    return FitResult(split_after, model, history, time.perf_counter() - start, init, best_epoch)


@dataclasses.dataclass
class VRNDetails:
    """What the Voting ResNet report needs of one split: the model, its test logits, curves."""

    model: keras.Model
    logits: np.ndarray
    curves: dict[str, dict[str, list[float]]]


def fit_split(config: VRNConfig, dataset: FaceDataset, split: Split, folder: Path,
              strategy: tf.distribute.Strategy, *, verbose: int | str = "auto",
              log: Callable[[str], None] = print, chief: bool = True,
              state: Path | None = None, resume: bool = False) -> SplitOutcome:
    """The paper's protocol on one split (§4): compare split points, retrain the best, test; the
    task's :meth:`~csa_keras.tasks.Task.fit_split`.

    Every split point of ``config.split_after`` is trained on ``split.train``
    and scored with soft and hard voting on validation and test (a row of
    :func:`~voting_resnet.report.comparison_markdown`, the paper's Table 3).
    With several, the best on validation (by the configured vote) is chosen;
    each candidate's model and history go to ``folder/split<k>/``. The
    chosen one is trained again from scratch on train + validation for the
    number of epochs selected on validation when ``config.retrain`` is
    ``always`` (the ``paper`` preset, as the paper's §3.3 does for its final
    figures) or ``several`` with several split points (the default). The chosen model is evaluated on ``split.test``
    and saved as ``folder/model.keras``. ``state`` holds every training's
    resumable phase (default ``folder/.backup``).
    """
    images, labels, class_names = dataset.images, dataset.labels, dataset.class_names
    k = len(class_names)
    preprocessing = preprocessing_for(class_names, images.shape[1:], config.detect)
    state = Path(state) if state is not None else folder / BACKUP
    train, test = np.asarray(split.train), np.asarray(split.test)
    val = np.asarray(split.val) if split.val is not None and len(split.val) else None
    several = len(config.split_after) > 1
    key = f"val_accuracy_{config.voting}"
    best, best_row, comparison, histories = None, None, [], []
    for s in config.split_after:
        sub = folder / f"split{s}" if several else folder
        log(f"split_after={s}: training on {len(train)} images")
        result = fit_model(config, s, images[train], labels[train], k, sub, strategy,
                           val=None if val is None else (images[val], labels[val]),
                           verbose=verbose, state=state / f"split{s}", resume=resume)
        histories.append((f"split{s}", result.history))
        row = {"split_after": s, "seconds": round(result.seconds, 2),
               "seconds_per_epoch": float(np.median(result.history["epoch_seconds"]))}
        for part, index in (("val", val), ("test", test)):
            if index is not None and len(index):
                m = vote_metrics(crop_logits(result.model, images[index], config.batch_size),
                                 labels[index], class_names, config.voting)
                row[f"{part}_accuracy_soft"] = m["accuracy_soft"]
                row[f"{part}_accuracy_hard"] = m["accuracy_hard"]
        comparison.append(row)
        if several and chief:
            save_model(result.model, sub / "model.keras", preprocessing=preprocessing)
            write_history(sub / "history.csv", [(f"split{s}", result.history)])
        if best is None or row[key] > best_row[key]:
            best, best_row = result, row
    final, curves = best, {f"split{best.split_after}": best.history}
    retrained = val is not None and (config.retrain == "always"
                                     or (config.retrain == "several" and several))
    retrain_epochs = best.best_epoch or config.epochs
    if retrained:
        both = np.sort(np.concatenate([train, val]))
        log(f"retraining split_after={best.split_after} on train + val ({len(both)} images) "
            f"for the {retrain_epochs} epochs selected on validation")
        final = fit_model(config, best.split_after, images[both], labels[both], k, folder,
                          strategy, val=None, verbose=verbose, state=state / "retrain",
                          resume=resume, epochs=retrain_epochs)
        histories.append((f"retrain_split{final.split_after}", final.history))
        curves[f"retrain_split{final.split_after}"] = final.history

    logits = crop_logits(final.model, images[test], config.batch_size)
    metrics = vote_metrics(logits, labels[test], class_names, config.voting)
    metrics.update(
        n_train=int(len(train) + (len(val) if retrained else 0)),
        n_val=0 if val is None else len(val),
        n_test=len(test),
        split_after=final.split_after,
        selected_on=f"val_{config.voting}_vote" if several else None,
        selected_epoch=best.best_epoch,
        retrained_on_train_val=bool(retrained),
        retrain_epochs=retrain_epochs if retrained else None,
        comparison=comparison,
    )
    if final.init is not None:
        metrics["init_from"] = {"path": str(config.init_from), **final.init}
    if chief:
        save_model(final.model, folder / "model.keras", preprocessing=preprocessing)
        write_history(folder / "history.csv", histories)
    curves = {phase: {k: v for k, v in h.items() if k != "epoch_seconds"}
              for phase, h in curves.items()}
    return SplitOutcome(metrics, histories, test, VRNDetails(final.model, logits, curves))


def prepare_dataset(config: VRNConfig, dataset: FaceDataset,
                    log: Callable[[str], None] = print) -> FaceDataset:
    """The dataset with ``config.channels`` channels, or a one-line refusal.

    Grey data repeats its channel for a three-channel model (the paper's
    input is colour); a dataset no run can use (NaN, wrong shape, one class)
    is refused in one line.
    """
    check_images(dataset.images, f"{dataset.name} images")
    dataset = dataclasses.replace(dataset, images=as_channels(dataset.images, config.channels))
    check_dataset(dataset)
    return dataset


def check_splits(config: VRNConfig, splits: list[Split]) -> None:
    """Choosing among several split points needs a validation set in every split."""
    if len(config.split_after) > 1 and any(s.n_val == 0 for s in splits):
        raise ValueError("split_after with several values needs a validation set to choose "
                         f"on: val_fraction must be above 0. Received: "
                         f"split_after={list(config.split_after)}, "
                         f"val_fraction={config.val_fraction}")


def aggregate(config: VRNConfig, outcomes: list[SplitOutcome], names: list[str],
              metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` over folds: fold 1's split point and selection, every fold's rows.

    The split point is a choice, not a measure: its mean and the spread of
    the set sizes are dropped.
    """
    first = outcomes[0].metrics
    metrics = {k: v for k, v in metrics.items()
               if k not in ("split_after_std", "n_train_std", "n_val_std")}
    metrics.update(
        voting=config.voting, split_after=first["split_after"],
        selected_on=first["selected_on"], retrained_on_train_val=first["retrained_on_train_val"],
        comparison=[dict(row, fold=name) for o, name in zip(outcomes, names)
                    for row in o.metrics["comparison"]])
    return metrics


def run_vrn(config: VRNConfig, output: str | os.PathLike | None = None,
            dataset: FaceDataset | None = None, verbose: int | str = "auto",
            log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """The whole Voting ResNet story of one command; returns the ``metrics.json`` dict.

    The shared :func:`~csa_keras.training.experiment.run_experiment` with
    this task: one :func:`fit_split` per split of the protocol (one for
    ``holdout`` and ``predefined``, ``folds`` for ``subject-kfold``, each in
    ``foldNN/``, aggregated as mean ± std with a pooled confusion matrix; the
    top-level ``model.keras`` is fold 1's). ``resume`` continues the run a
    killed process left in ``output``; a ``dataset`` no run can use is
    refused in one line.
    """
    return run_experiment(get_task("voting_resnet"), config, output, dataset, verbose, log, resume)
