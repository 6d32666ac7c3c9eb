"""Train and evaluate the Voting ResNet (VRN paper §3.3-4, SPEC §4 and §5).

The recipe: Adam at 2e-4 decayed once per epoch (0.95 RAF-DB, 0.65
AffectNet), batch 135, online augmentation in training only, cross-entropy
on every crop's logits. With several split points the run reproduces the
paper's protocol: each is trained on the training set and scored on the
validation set (soft and hard voting, the paper's Table 3), the best on
validation is retrained on train + validation, and that model is evaluated
on the test set and saved as ``model.keras``.

Importing this module registers every class a run's ``model.keras`` holds
(the layers and :class:`~voting_resnet.losses.CropCrossEntropy` of its
compile config), so ``keras.models.load_model`` needs no ``custom_objects``.

Augmentation runs in the ``tf.data`` pipeline on training batches only, as a
``keras.Sequential`` of preprocessing layers; the saved model holds none of
it, so prediction and export never see a random layer.

Every training of a split point is a resumable
:class:`~csa_keras.training.callbacks.TrainingPhase` under ``.backup/``
(issue 6): ``resume=True`` (``--resume``) reloads the split points, retrainings
and folds a killed run finished and continues the one it was in from its
last completed epoch.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset
from csa_keras.evaluation.metrics import aggregate_folds, classification_metrics
from csa_keras.training import loop, rundir
from csa_keras.training.callbacks import TrainingPhase
from csa_keras.training.config import config_json
from csa_keras.training.csa import check_dataset, load_data
from csa_keras.training.session import run_session
from csa_keras.training.pipeline import as_channels, check_images, make_dataset, replica_batching
from voting_resnet.config import VRNConfig
from voting_resnet.layers.voting import hard_vote, soft_vote
from voting_resnet.losses import CropCrossEntropy
from voting_resnet.models.resnet18 import build_voting_resnet


def build_augmentation(channels: int = 3, seed: int = 0) -> keras.Sequential:
    """The paper's online augmentation (§3.3) as Keras preprocessing layers.

    Random resized crop (a zoom into 80-100% of the side, then a shift),
    colour jitter (brightness, contrast and, for colour input, saturation),
    translation, rotation (±10°) and random erasing, on [0, 1] images.
    """
    jitter = dict(brightness_factor=0.2, contrast_factor=0.2)
    if channels == 3:
        jitter["saturation_factor"] = 0.2
    return keras.Sequential([
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
    """``--init-from``: copy weights layer by layer where names and shapes agree.

    ``source`` is a ``.keras`` model or a run directory holding ``model.keras``.
    Every split point has the same weights (the crop layer has none), so any
    of them initialises any other; a head for another number of classes is
    left as initialised (RAF-DB starting from AffectNet's 8-class model).
    The file is loaded with Keras ``safe_mode`` (no code in it runs), and a
    file of another task (a CSA model), a truncated or a non-model file ends
    in one ``ValueError`` line naming it.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise ValueError(f"--init-from {source}: no model.keras there")
    try:
        donor = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a user error here
        raise ValueError(f"--init-from {source}: not a Keras model ({error.__class__.__name__})") from None
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
        raise ValueError(f"--init-from {source}: no layer of it matches this model")
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
    return loop.predict(model, ds)["crop_logits"][: len(images)]


def vote_metrics(logits: np.ndarray, labels: np.ndarray, class_names, voting: str) -> dict:
    """Classification metrics of the chosen vote, plus soft and hard accuracy."""
    soft = soft_vote(logits).argmax(axis=1)
    hard = hard_vote(logits).argmax(axis=1)
    metrics = classification_metrics(labels, soft if voting == "soft" else hard, class_names)
    metrics["accuracy_soft"] = float(np.mean(soft == labels))
    metrics["accuracy_hard"] = float(np.mean(hard == labels))
    metrics["voting"] = voting
    return metrics


@dataclasses.dataclass
class FitResult:
    """One trained model: its split point, weights, Keras history, wall time and init."""

    split_after: int
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    init: dict[str, int] | None = None


def compile_voting_resnet(model: keras.Model, learning_rate: float) -> keras.Model:
    """The training compile (VRN §3.3): Adam, cross-entropy on every crop, vote accuracy.

    The ``vote`` output has no loss; it is scored by accuracy. Call it inside
    the strategy's scope.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={"crop_logits": CropCrossEntropy(), "vote": None},
        metrics={"vote": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
    )
    return model


def fit_model(config: VRNConfig, split_after: int, images: np.ndarray, labels: np.ndarray,
              num_classes: int, folder: Path, strategy: tf.distribute.Strategy,
              val: tuple[np.ndarray, np.ndarray] | None = None,
              verbose: int | str = "auto", state: Path | None = None,
              resume: bool = False) -> FitResult:
    """Build, optionally initialise (``--init-from``), and train one Voting ResNet.

    The model trains on the crop logits (:class:`~voting_resnet.losses.CropCrossEntropy`);
    the ``vote`` output has no loss and is scored by accuracy (history keys
    ``loss``, ``vote_accuracy``, their ``val_`` twins, ``learning_rate`` and
    ``epoch_seconds``). The learning rate is ``lr * lr_decay ** epoch``
    (once per epoch, :mod:`voting_resnet.config`). The weights of the best
    epoch on ``val_loss`` (``loss`` without validation) are restored.
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
        compile_voting_resnet(model, config.lr)
    augment = build_augmentation(images.shape[-1], config.seed) if config.augment else None

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
    val_ds = None
    if val is not None and len(val[1]):
        index, batching = replica_batching(np.arange(len(val[1])), config.batch_size,
                                           strategy, "validate")
        val_ds = make_dataset(val[0][index], val[1][index], target="labels",
                              map_fn=lambda x, y: (x, {"crop_logits": y, "vote": y}),
                              **batching)
    decay = keras.callbacks.LearningRateScheduler(
        lambda epoch, _: config.lr * config.lr_decay ** epoch)
    monitor = "val_loss" if val_ds is not None else "loss"
    scratch = state is None
    phase = TrainingPhase(folder / rundir.BACKUP / "train" if scratch else state, monitor,
                          resume and not scratch, backup=not scratch)
    history = loop.train_phase(model, phase, train_ds, validation_data=val_ds,
                               epochs=config.epochs, steps_per_epoch=steps, callbacks=[decay],
                               strategy=strategy, verbose=verbose)
    if scratch:
        shutil.rmtree(folder / rundir.BACKUP, ignore_errors=True)
    return FitResult(split_after, model, history, time.perf_counter() - start, init)


@dataclasses.dataclass
class SplitOutcome:
    """What one train/test split leaves: its metrics, the reported model, and for the report."""

    metrics: dict[str, Any]
    model: keras.Model | None
    test_index: np.ndarray
    logits: np.ndarray
    histories: list[tuple[str, dict[str, list[float]]]]
    curves: dict[str, dict[str, list[float]]]


def evaluate_split(config: VRNConfig, images: np.ndarray, labels: np.ndarray,
                   class_names, split, folder: Path, strategy: tf.distribute.Strategy,
                   verbose: int | str = "auto", log: Callable[[str], None] = print,
                   chief: bool = True, state: Path | None = None,
                   resume: bool = False) -> SplitOutcome:
    """The paper's protocol on one split (§4): compare split points, retrain the best, test.

    Every split point of ``config.split_after`` is trained on ``split.train``
    and scored with soft and hard voting on validation and test (a row of
    :func:`~voting_resnet.report.comparison_markdown`, the paper's Table 3).
    With several, the best on validation (by the configured vote) is chosen
    and, unless ``retrain_on_train_val`` is off, trained again from scratch
    on train + validation; each candidate's model and history go to
    ``folder/split<k>/``. The chosen model is evaluated on ``split.test``
    and saved as ``folder/model.keras``. ``state`` holds every training's
    resumable phase (default ``folder/.backup``).
    """
    k = len(class_names)
    state = Path(state) if state is not None else folder / rundir.BACKUP
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
            rundir.save_model(result.model, sub / "model.keras")
            rundir.write_history(sub / "history.csv", [(f"split{s}", result.history)])
        if best is None or row[key] > best_row[key]:
            best, best_row = result, row
    final, curves = best, {f"split{best.split_after}": best.history}
    retrained = several and config.retrain_on_train_val
    if retrained:
        both = np.sort(np.concatenate([train, val]))
        log(f"retraining split_after={best.split_after} on train + val ({len(both)} images)")
        final = fit_model(config, best.split_after, images[both], labels[both], k, folder,
                          strategy, val=None, verbose=verbose, state=state / "retrain",
                          resume=resume)
        histories.append((f"retrain_split{final.split_after}", final.history))
        curves[f"retrain_split{final.split_after}"] = final.history

    logits = crop_logits(final.model, images[test], config.batch_size)
    metrics = vote_metrics(logits, labels[test], class_names, config.voting)
    metrics.update(
        n_train=int(len(train) + (len(val) if retrained else 0)),
        n_val=0 if val is None else int(len(val)),
        n_test=int(len(test)),
        split_after=final.split_after,
        selected_on=f"val_{config.voting}_vote" if several else None,
        retrained_on_train_val=bool(retrained),
        comparison=comparison,
    )
    if final.init is not None:
        metrics["init_from"] = {"path": str(config.init_from), **final.init}
    if chief:
        rundir.save_model(final.model, folder / "model.keras")
        rundir.write_history(folder / "history.csv", histories)
    curves = {phase: {k: v for k, v in h.items() if k != "epoch_seconds"}
              for phase, h in curves.items()}
    return SplitOutcome(metrics, final.model, test, logits, histories, curves)


def run_vrn(config: VRNConfig, output: str | os.PathLike | None = None,
            dataset: FaceDataset | None = None, verbose: int | str = "auto",
            log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """The whole Voting ResNet story of one command; returns the ``metrics.json`` dict.

    One :func:`evaluate_split` per split of the protocol: one for ``holdout``
    and ``predefined``, ``folds`` for ``subject-kfold`` (each in
    ``foldNN/``, aggregated as mean ± std with a pooled confusion matrix by
    :func:`~csa_keras.evaluation.metrics.aggregate_folds`; the top-level
    ``model.keras`` is fold 1's, as for the CSA). ``resume`` continues the
    run a killed process left in ``output``, as for
    :func:`~csa_keras.training.csa.run_csa`; a ``dataset`` no run can use
    (NaN, wrong shape, one class) is refused in one line.
    """
    return run_session(
        config, output, "voting_resnet",
        lambda out, strategy, chief, run_info: _run(config, out, dataset, strategy, chief, resume,
                                                    verbose, log, run_info),
        resume, log)


def _run(config: VRNConfig, out: Path, dataset: FaceDataset | None,
         strategy: tf.distribute.Strategy, chief: bool, resume: bool, verbose, log,
         run_info: dict[str, Any]) -> dict[str, Any]:
    from csa_keras.data.protocols import dedupe, make_splits

    started = time.perf_counter()
    if dataset is None:
        dataset = load_data(config, progress=verbose != 0, colour=config.channels == 3)
    check_images(dataset.images, f"{dataset.name} images")
    dataset = dataclasses.replace(dataset, images=as_channels(dataset.images, config.channels))
    check_dataset(dataset)
    protocol = config.protocol
    if protocol == "predefined" and dataset.splits is None:
        log(f"{dataset.name} has no predefined split: using holdout")
        protocol = "holdout"
    splits = make_splits(dataset, protocol, folds=config.folds, seed=config.seed,
                         val_fraction=config.val_fraction, val_per_class=config.val_per_class,
                         test_size=config.test_size)
    if len(config.split_after) > 1 and any(s.n_val == 0 for s in splits):
        raise ValueError(f"choosing among --split-after {' '.join(map(str, config.split_after))} "
                         "needs a validation set: set --val-fraction above 0")
    run_info = {**run_info, "protocol_used": protocol, "dataset": dataset.summary()}
    if chief:
        rundir.write_text(out / "config.json", config_json(config, run=run_info))

    images, labels, names = dataset.images, dataset.labels, dataset.class_names
    outcomes: list[SplitOutcome] = []
    duplicates_removed = 0
    for i, split in enumerate(splits):
        if config.dedupe:
            split, removed = dedupe(split, images)
            duplicates_removed += removed
        name = "" if len(splits) == 1 else f"fold{i + 1:02d}"
        if len(splits) > 1:
            log(f"[{split.name}] {i + 1}/{len(splits)}: train {len(split.train)}, "
                f"test {len(split.test)}")
        outcome = evaluate_split(config, images, labels, names, split, out / name, strategy,
                                 verbose, log, chief,
                                 state=out / rundir.BACKUP / (name or "split"), resume=resume)
        outcome.metrics["fold"] = split.name
        outcomes.append(outcome if i == 0 else dataclasses.replace(outcome, model=None))

    first = outcomes[0]
    if len(outcomes) == 1:
        metrics = dict(first.metrics)
        metrics.pop("fold")
    else:
        metrics = aggregate_folds([o.metrics for o in outcomes])
        for key in ("n_train", "n_val"):
            metrics[key] = int(round(np.mean([o.metrics[key] for o in outcomes])))
        for key in ("split_after", "split_after_std", "n_train_std", "n_val_std"):
            metrics.pop(key, None)
        metrics.update(
            voting=config.voting, split_after=first.metrics["split_after"],
            selected_on=first.metrics["selected_on"],
            retrained_on_train_val=first.metrics["retrained_on_train_val"],
            comparison=[dict(row, fold=o.metrics["fold"])
                        for o in outcomes for row in o.metrics["comparison"]])
        if chief:
            tmp = out / ".model.partial.keras"
            shutil.copyfile(out / "fold01" / "model.keras", tmp)
            os.replace(tmp, out / "model.keras")
            rundir.write_history(out / "history.csv", [
                (f"{o.metrics['fold']}/{phase}", h) for o in outcomes for phase, h in o.histories])
    metrics = {
        "task": "voting_resnet",
        "dataset": dataset.name,
        "protocol": protocol,
        "class_names": list(names),
        **metrics,
        "duplicates_removed": duplicates_removed,
        "skipped": dataset.skipped.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if chief:
        from voting_resnet.report import write_vrn_report

        write_vrn_report(out, config, dataset, first.model, first.test_index, first.logits,
                         metrics, first.curves)
        rundir.write_json(out / "metrics.json", metrics)
    return metrics
