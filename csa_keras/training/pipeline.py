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



def replica_batching(n: int, batch_size: int, strategy: tf.distribute.Strategy,
                     training: bool) -> dict:
    """Batch settings that every replica of ``strategy`` can split evenly.

    With one replica this is just ``batch_size``. With several, training drops
    a short last batch, and evaluation makes its first batch a multiple of
    the replica count: Keras 3.15's ``evaluate`` under a ``tf.distribute``
    strategy averages the first batch across replicas to build its metrics,
    which fails when the replicas hold different numbers of images.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return {"batch_size": batch_size}
    if training:
        return {"batch_size": batch_size, "drop_remainder": n >= batch_size}
    return {"batch_size": max(replicas, min(batch_size, n - n % replicas))}
