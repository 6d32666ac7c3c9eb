"""Train and evaluate the Voting ResNet (VRN paper §3.3-4, SPEC §4 and §5).

The recipe: Adam at 2e-4 decayed once per epoch (0.95 RAF-DB, 0.65
AffectNet), batch 135, online augmentation in training only, cross-entropy
on every crop's logits. With several split points the run reproduces the
paper's protocol: each is trained on the training set and scored on the
validation set (soft and hard voting, the paper's Table 3), the best on
validation is retrained on train + validation, and that model is evaluated
on the test set and saved as ``model.keras``.

Augmentation runs in the ``tf.data`` pipeline on training batches only, as a
``keras.Sequential`` of preprocessing layers; the saved model holds none of
it, so prediction and export never see a random layer.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset
from csa_keras.training import rundir
from csa_keras.training.callbacks import restore_best, standard_callbacks
from csa_keras.training.config import config_json
from csa_keras.training.csa import load_data
from csa_keras.training.pipeline import make_dataset
from csa_keras.training.strategy import describe, get_strategy, is_chief, use_mixed_precision
from voting_resnet.config import VRNConfig


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
        keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.2), value_range=(0, 1),
                                   seed=seed + 4, name="erasing"),
    ], name="augmentation")


def balanced_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                     map_fn=None) -> tuple[tf.data.Dataset, int]:
    """Class-balanced batches: minority classes over-sampled, majority ones down-sampled.

    Each class is an endlessly repeated, shuffled stream and batches draw from
    the streams with equal weights (``tf.data.Dataset.sample_from_datasets``),
    so every epoch sees the same number of images as the data has, equally
    many of each class, and over epochs every image of a large class is used.
    Returns the dataset and its steps per epoch.
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
    steps = max(1, len(labels) // batch_size)
    return mixed.prefetch(tf.data.AUTOTUNE), steps


def transfer_weights(model: keras.Model, source: str | os.PathLike) -> dict[str, int]:
    """``--init-from``: copy weights layer by layer where names and shapes agree.

    ``source`` is a ``.keras`` model or a run directory holding ``model.keras``.
    Every split point has the same weights (the crop layer has none), so any
    of them initialises any other; a head for another number of classes is
    left as initialised (RAF-DB starting from AffectNet's 8-class model).
    """
    path = Path(source)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise ValueError(f"--init-from {source}: no model.keras there")
    try:
        donor = keras.models.load_model(path, compile=False)
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


def _as_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(images.dtype)[..., None]


def crop_logits(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's ``(N, V, K)`` crop logits on uint8 or [0, 1] images."""
    ds = make_dataset(images, batch_size=batch_size, target="none")
    return model.predict(ds, verbose=0)["crop_logits"]


def vote_metrics(logits: np.ndarray, labels: np.ndarray, class_names, voting: str) -> dict:
    """Classification metrics of the chosen vote, plus soft and hard accuracy."""
    from csa_keras.evaluation.metrics import classification_metrics
    from voting_resnet.layers.voting import hard_vote, soft_vote

    soft = soft_vote(logits).argmax(axis=1)
    hard = hard_vote(logits).argmax(axis=1)
    metrics = classification_metrics(labels, soft if voting == "soft" else hard, class_names)
    metrics["accuracy_soft"] = float(np.mean(soft == labels))
    metrics["accuracy_hard"] = float(np.mean(hard == labels))
    metrics["voting"] = voting
    return metrics


@dataclasses.dataclass
class FitResult:
    split_after: int
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float


def fit_model(config: VRNConfig, split_after: int, images: np.ndarray, labels: np.ndarray,
              num_classes: int, folder: Path, strategy: tf.distribute.Strategy,
              val: tuple[np.ndarray, np.ndarray] | None = None,
              verbose: int | str = "auto") -> FitResult:
    """Build, optionally initialise, and train one Voting ResNet."""
    from voting_resnet.losses import CropCrossEntropy
    from voting_resnet.models.resnet18 import build_voting_resnet

    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with strategy.scope():
        model = build_voting_resnet(num_classes=num_classes, input_shape=images.shape[1:],
                                    split_after=split_after, voting=config.voting)
        if config.init_from:
            transfer_weights(model, config.init_from)
        model.compile(
            optimizer=keras.optimizers.Adam(config.lr),
            loss={"crop_logits": CropCrossEntropy(), "vote": None},
            metrics={"vote": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
        )
    augment = build_augmentation(images.shape[-1], config.seed) if config.augment else None

    def with_targets(x, y):
        if augment is not None:
            x = augment(x, training=True)
        return x, {"crop_logits": y, "vote": y}

    if config.balance:
        train_ds, steps = balanced_dataset(images, labels, config.batch_size, config.seed,
                                           map_fn=with_targets)
    else:
        train_ds = make_dataset(images, labels, batch_size=config.batch_size, shuffle=True,
                                seed=config.seed, target="labels", map_fn=with_targets)
        steps = None
    val_ds = None
    if val is not None and len(val[1]):
        val_ds = make_dataset(val[0], val[1], batch_size=config.batch_size, target="labels",
                              map_fn=lambda x, y: (x, {"crop_logits": y, "vote": y}))
    decay = keras.callbacks.LearningRateScheduler(
        lambda epoch, _: config.lr * config.lr_decay ** epoch)
    monitor = "val_loss" if val_ds is not None else "loss"
    fit = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                    steps_per_epoch=steps, verbose=verbose, shuffle=False,
                    callbacks=[decay, *standard_callbacks(folder, "train", monitor)])
    restore_best(model, folder, "train")
    (folder / "history_train.csv").unlink(missing_ok=True)
    return FitResult(split_after, model, fit.history, time.perf_counter() - start)


def run_vrn(config: VRNConfig, output: str | os.PathLike | None = None,
            dataset: FaceDataset | None = None, verbose: int | str = "auto",
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole Voting ResNet story of one command; returns the ``metrics.json`` dict."""
    from csa_keras.data.protocols import dedupe, make_splits

    config.validate()
    out = rundir.prepare(output or rundir.default_output("voting_resnet"))
    keras.utils.set_random_seed(config.seed)
    strategy = get_strategy(config.strategy)
    policy = use_mixed_precision(config.mixed_precision)
    chief = is_chief(strategy)
    started = time.perf_counter()
    if dataset is None:
        dataset = load_data(config, progress=verbose != 0, colour=config.channels == 3)
    images = _as_channels(dataset.images, config.channels)
    dataset = dataclasses.replace(dataset, images=images)
    protocol = config.protocol
    if protocol == "predefined" and dataset.splits is None:
        log(f"{dataset.name} has no predefined split: using holdout")
        protocol = "holdout"
    split = make_splits(dataset, protocol, folds=config.folds, seed=config.seed,
                        val_fraction=config.val_fraction, val_per_class=config.val_per_class,
                        test_size=config.test_size)[0]
    duplicates_removed = 0
    if config.dedupe:
        split, duplicates_removed = dedupe(split, dataset.images)
    run_info = {"strategy": describe(strategy), "precision_policy": policy,
                "protocol_used": protocol, "dataset": dataset.summary()}
    if chief:
        rundir.write_text(out / "config.json", config_json(config, run=run_info))

    labels, names, k = dataset.labels, dataset.class_names, dataset.num_classes
    train, val, test = split.train, split.val, split.test
    has_val = val is not None and len(val) > 0
    candidates, comparison = [], []
    for s in config.split_after:
        folder = out if len(config.split_after) == 1 else out / f"split{s}"
        log(f"split_after={s}: training on {len(train)} images")
        result = fit_model(config, s, images[train], labels[train], k, folder, strategy,
                           val=(images[val], labels[val]) if has_val else None, verbose=verbose)
        row = {"split_after": s, "seconds": round(result.seconds, 2),
               "seconds_per_epoch": float(np.median(result.history.get("epoch_seconds", [0])))}
        for part, index in (("val", val), ("test", test)):
            if index is not None and len(index):
                m = vote_metrics(crop_logits(result.model, images[index], config.batch_size),
                                 labels[index], names, config.voting)
                row[f"{part}_accuracy_soft"] = m["accuracy_soft"]
                row[f"{part}_accuracy_hard"] = m["accuracy_hard"]
        comparison.append(row)
        candidates.append(result)
        if len(config.split_after) > 1 and chief:
            rundir.save_model(result.model, folder / "model.keras")

    key = "val_accuracy_soft" if has_val else "test_accuracy_soft"
    if config.voting == "hard":
        key = key.replace("soft", "hard")
    best = max(range(len(candidates)), key=lambda i: comparison[i].get(key, 0.0))
    final = candidates[best]
    retrained = False
    if len(candidates) > 1 and config.retrain_on_train_val and has_val:
        both = np.concatenate([train, val])
        log(f"retraining split_after={final.split_after} on train + val ({len(both)} images)")
        final = fit_model(config, final.split_after, images[both], labels[both], k,
                          out / "retrain", strategy, val=None, verbose=verbose)
        retrained = True

    logits = crop_logits(final.model, images[test], config.batch_size)
    metrics = vote_metrics(logits, labels[test], names, config.voting)
    metrics = {
        "task": "voting_resnet",
        "dataset": dataset.name,
        "protocol": protocol,
        "class_names": list(names),
        "n_train": int(len(train) + (len(val) if retrained else 0)),
        "n_val": int(len(val)) if has_val else 0,
        "n_test": int(len(test)),
        **metrics,
        "split_after": final.split_after,
        "selected_on": key.split("_accuracy")[0] if len(candidates) > 1 else None,
        "retrained_on_train_val": retrained,
        "comparison": comparison,
        "duplicates_removed": duplicates_removed,
        "skipped": dataset.skipped.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if chief:
        from voting_resnet.report import write_vrn_report

        rundir.save_model(final.model, out / "model.keras")
        rundir.write_history(out / "history.csv", [(f"split{final.split_after}", final.history)])
        write_vrn_report(out, config, dataset, final.model, test, logits, metrics)
        rundir.write_json(out / "metrics.json", metrics)
    return metrics
