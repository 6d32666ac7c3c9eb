"""Throughput of the training input pipelines alone, with no model consuming them.

The pipelines are the ones training builds with
:func:`csa_keras.training.pipeline.make_dataset`: cached, shuffled, batched
and prefetched, the CSA's with the image as its own target (batch 32), the
Voting ResNet's with the paper's online augmentation
(:func:`voting_resnet.training.build_augmentation`) run on whole batches in
``tf.data`` (batch 135). The VRN's is also timed with the same augmentation
applied image by image before batching, the usual ``tf.data`` recipe, for
comparison. Each figure is the median over ``--repeats``
epochs after a first one that fills the cache; the models train at tens to
hundreds of images a second (``throughput.py``), so a pipeline far above that
is not what limits training.

    python benchmarks/input_pipeline.py [--images 2700] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf

from csa_keras.training.pipeline import make_dataset
from voting_resnet.training import build_augmentation


def _epoch_rate(dataset: tf.data.Dataset, n: int) -> float:
    start = time.perf_counter()
    for _batch in dataset:
        pass
    return n / (time.perf_counter() - start)


def time_pipeline(dataset: tf.data.Dataset, n: int, repeats: int) -> dict:
    first = _epoch_rate(dataset, n)
    rates = [_epoch_rate(dataset, n) for _ in range(repeats)]
    return {"first_epoch_images_per_s": round(first, 1),
            "images_per_s": round(statistics.median(rates), 1)}


def per_image_augmented(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """The VRN pipeline with the augmentation mapped over single images, then batched."""
    augment = build_augmentation(images.shape[-1], seed=0)

    def one(x, y):
        x = augment(tf.cast(x, tf.float32) / 255.0, training=True)
        return x, y

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache().shuffle(len(images), seed=0)
    ds = ds.map(one, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def run(n: int = 2700, repeats: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)
    colour = rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    augment = build_augmentation(3, seed=0)

    def with_targets(x, y):
        return augment(x, training=True), {"crop_logits": y, "vote": y}

    pipelines = [
        ("CSA pretraining (image -> image)", 32,
         make_dataset(grey, target="images", batch_size=32, shuffle=True)),
        ("CSA fine-tuning (image -> one-hot)", 32,
         make_dataset(grey, labels, target="onehot", num_classes=7, batch_size=32, shuffle=True)),
        ("VRN training, augmentation on batches (used)", 135,
         make_dataset(colour, labels, target="labels", batch_size=135, shuffle=True,
                      map_fn=with_targets)),
        ("VRN training, augmentation per image", 135, per_image_augmented(colour, labels, 135)),
    ]
    return [{"pipeline": name, "batch": batch, "images": n, **time_pipeline(ds, n, repeats)}
            for name, batch, ds in pipelines]


def markdown(rows: list[dict]) -> str:
    lines = ["| pipeline | batch | images/s (cached epochs) | first epoch images/s |",
             "|---|---|---|---|"]
    lines += [f"| {r['pipeline']} | {r['batch']} | {r['images_per_s']:.0f} | "
              f"{r['first_epoch_images_per_s']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2700, help="images per epoch (default: 2700)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (default: 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    rows = run(args.images, args.repeats)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
