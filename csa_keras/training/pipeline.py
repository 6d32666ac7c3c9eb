"""``tf.data`` input pipelines shared by both papers' training.

Images arrive as ``uint8`` arrays and are scaled to [0, 1] inside the
pipeline, so the arrays held in memory stay a quarter of the size. Batches
are formed at the global batch size (``--batch-size`` is global: the
paper's recipe stays the same on any number of replicas), the
dataset is cached after decoding, shuffled with a seed, and prefetched.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from csa_keras.data.dataset import FaceDataset


def _scale(images: tf.Tensor) -> tf.Tensor:
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def make_dataset(
    images: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    target: str = "labels",
    num_classes: int | None = None,
    map_fn=None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)``.

    ``target`` chooses ``y``: ``"labels"`` (integer labels), ``"onehot"``
    (for categorical cross-entropy, needs ``num_classes``), ``"images"``
    (the input itself: autoencoder pretraining) or ``"none"`` (``x`` only,
    for prediction). ``map_fn`` runs on each batch after scaling, in
    training only (augmentation).
    """
    x = tf.data.Dataset.from_tensor_slices(images)
    if target == "images":
        ds = x.map(lambda im: (_scale(im), _scale(im)))
    elif target == "none":
        ds = x.map(_scale)
    else:
        if targets is None:
            raise ValueError(f"target={target!r} needs targets")
        y = tf.data.Dataset.from_tensor_slices(np.asarray(targets, dtype=np.int64))
        if target == "onehot":
            if num_classes is None:
                raise ValueError("target='onehot' needs num_classes")
            y = y.map(lambda label: tf.one_hot(label, num_classes))
        elif target != "labels":
            raise ValueError(f"unknown target {target!r}")
        ds = tf.data.Dataset.zip((x.map(_scale), y))
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if map_fn is not None:
        ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)



def replica_batching(index: np.ndarray, batch_size: int, strategy: tf.distribute.Strategy,
                     purpose: str) -> tuple[np.ndarray, dict]:
    """Indices and batch settings that every replica of ``strategy`` can split.

    With one replica nothing changes. With several, Keras 3.15 under a
    ``tf.distribute`` strategy fails on a batch that leaves a replica empty
    (``predict`` and ``evaluate``) or splits it unevenly (``evaluate``), so:

    - ``"train"`` drops a short last batch (the shuffle moves it each epoch);
    - ``"validate"`` leaves out the last ``len(index) % replicas`` images
      (fewer than the replica count, from the validation loss only) and
      batches at a multiple of the replica count;
    - ``"predict"`` pads with copies of the first image up to a multiple of
      the replica count; the caller keeps the first ``len(index)`` outputs.
    """
    index = np.asarray(index)
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or len(index) == 0:
        return index, {"batch_size": batch_size}
    even_batch = max(replicas, batch_size - batch_size % replicas)
    if purpose == "train":
        return index, {"batch_size": batch_size, "drop_remainder": len(index) >= batch_size}
    if purpose == "validate":
        keep = max(replicas, len(index) - len(index) % replicas)
        return np.resize(index, keep), {"batch_size": even_batch}
    if purpose == "predict":
        padded = -(-len(index) // replicas) * replicas
        extra = np.full(padded - len(index), index[0], dtype=index.dtype)
        return np.concatenate([index, extra]), {"batch_size": even_batch}
    raise ValueError(f"unknown purpose {purpose!r}")


def check_images(images: np.ndarray, what: str = "images", shape: tuple | None = None) -> None:
    """Refuse, in one line, arrays no model here can take .

    ``images`` must be ``(N, H, W, C)`` with C = 1 (grey) or 3 (colour),
    ``uint8``, or floating point with every value finite and in [0, 1] (the
    scale the models are trained at); ``shape``, when given, is the
    ``(H, W, C)`` a model takes. A NaN reaching ``fit`` would otherwise turn
    every weight into NaN several epochs later, and a wrong shape fail deep
    inside a Keras layer.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{what} must be (N, height, width, channels). Received: {what} with shape {images.shape}")
    if len(images) == 0:
        raise ValueError(f"{what} are empty: there is nothing to train or predict on")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"{what} have {images.shape[-1]} channels: 1 (grey) or 3 (colour) expected")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"{what} are {images.shape[1:]} but the model takes {tuple(shape)}")
    if images.dtype == np.uint8:
        return
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{what} are {images.dtype}: uint8 (0-255) or float in [0, 1] expected")
    bad = ~np.isfinite(images)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))[0])
        raise ValueError(f"{what} hold {int(bad.sum())} NaN or infinite values "
                         f"(the first in image {first})")
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"{what} are float with values in [{low:g}, {high:g}]: scale them to "
                         "[0, 1] or pass uint8")


def as_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grey images repeated to 3 channels, or colour ones made grey (ITU-R 601 luma)."""
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if images.dtype == np.uint8:
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    return grey.astype(images.dtype)[..., None]


def check_dataset(dataset: FaceDataset, multiple: int = 1) -> None:
    """Refuse, in one line, a dataset no training run can use.

    Images must pass :func:`check_images`, be square with a side divisible
    by ``multiple`` (a model whose poolings and upsamplings must return to
    the input size asks for one), and hold at least two classes (a
    classifier of one class has nothing to learn).
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
