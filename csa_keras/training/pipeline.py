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
