"""Split points of the Voting ResNet compared on a real dataset, at a CPU-affordable scale.

The VRN paper (§4, Tables 2-3) finds that cutting the feature map after an
early module costs compute and memory and gains accuracy over the baseline
ResNet-18. This benchmark repeats that comparison on any dataset with a
predefined train/test split (for example the Kaggle FER2013 image folder
with ``train/`` and ``test/``):

1. the data is loaded once, in colour (grey faces repeat their channel), as
   ``python -m voting_resnet.train`` loads it;
2. a seeded, stratified subset takes ``--train-per-class`` images of every
   class from the training split and ``--test-per-class`` from the test split
   (0 keeps all; a class with fewer images gives all it has);
3. for every ``--split-after`` point a fresh model is trained with the
   paper's recipe (``voting_resnet.config`` preset ``paper``: Adam 2e-4
   multiplied by 0.95 after every epoch, online augmentation, cross-entropy on
   every crop) but ``--epochs`` epochs and ``--batch-size`` images a batch,
   through :func:`voting_resnet.training.fit_model`, from the same seed;
4. each model is scored on the test subset: soft and hard voting accuracy,
   the median wall time of a training epoch, and inference images per second
   (one warm-up batch, then the whole test subset timed).

It prints a Markdown table, then one JSON line per split point;
``--json-out FILE`` also writes the settings and the rows as one JSON object.
Few epochs on a few hundred images give noisy accuracies: the benchmark
measures cost and shows the trend, it does not reproduce the paper's
numbers. With ``--epochs 1`` the epoch time includes graph tracing.

    python benchmarks/vrn_split_points.py DATA [--train-per-class 150]
        [--test-per-class 150] [--split-after 0 1 2 3] [--epochs 3]
        [--batch-size 135] [--seed 0] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def stratified_subset(labels: np.ndarray, index: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` seeded random members of every class among ``index`` (0: all), sorted."""
    index = np.asarray(index, dtype=np.int64)
    if per_class == 0:
        return index
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels[index]):
        members = index[labels[index] == k]
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _split_index(dataset, name: str, path: str) -> np.ndarray:
    if dataset.splits is None:
        raise ValueError(f"{path}: the data has no predefined train/test split "
                         f"(a folder needs train/ and test/ sub-folders)")
    index = np.flatnonzero(dataset.splits == name)
    if len(index) == 0:
        found = ", ".join(sorted(set(dataset.splits))) or "none"
        raise ValueError(f"{path}: no '{name}' split (splits found: {found})")
    return index


def benchmark_split(config, split_after: int, train_x, train_y, test_x, test_y, class_names,
                    folder: Path, strategy, verbose) -> dict:
    """Train one split point from ``config.seed`` and score it on the test subset."""
    import keras

    from voting_resnet.models.resnet18 import crop_size
    from voting_resnet.training import crop_logits, fit_model, vote_metrics

    keras.utils.set_random_seed(config.seed)
    result = fit_model(config, split_after, train_x, train_y, len(class_names),
                       folder / f"split{split_after}", strategy, val=None, verbose=verbose)
    crop_logits(result.model, test_x[:config.batch_size], config.batch_size)
    start = time.perf_counter()
    logits = crop_logits(result.model, test_x, config.batch_size)
    inference_seconds = time.perf_counter() - start
    metrics = vote_metrics(logits, test_y, class_names, config.voting)
    epoch_seconds = result.history.get("epoch_seconds", [])
    row = {
        "split_after": split_after,
        "crop_side": crop_size(train_x.shape[1], split_after),
        "views": int(logits.shape[1]),
        "test_accuracy_soft": metrics["accuracy_soft"],
        "test_accuracy_hard": metrics["accuracy_hard"],
        "test_balanced_accuracy": metrics.get("balanced_accuracy"),
        "final_train_loss": float(result.history["loss"][-1]),
        "seconds_per_epoch": float(np.median(epoch_seconds)) if epoch_seconds else None,
        "train_seconds": round(result.seconds, 2),
        "inference_images_per_second": len(test_x) / inference_seconds,
    }
    del result
    keras.backend.clear_session()
    return row


def markdown_table(rows: list[dict]) -> str:
    header = ["split after", "crop side", "views", "test acc soft", "test acc hard",
              "s / epoch (median)", "inference img/s", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = "0 (baseline)" if r["split_after"] == 0 else str(r["split_after"])
        epoch = "n/a" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.1f}"
        lines.append("| " + " | ".join([
            name, str(r["crop_side"]), str(r["views"]), f"{r['test_accuracy_soft']:.4f}",
            f"{r['test_accuracy_hard']:.4f}", epoch, f"{r['inference_images_per_second']:.1f}",
            f"{r['train_seconds']:.1f}"]) + " |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from csa_keras.data.readers import FORMAT_CHOICES
    from voting_resnet.models.resnet18 import SPLIT_POINTS

    parser = argparse.ArgumentParser(
        prog="python benchmarks/vrn_split_points.py",
        description="Train the Voting ResNet at each split point on a stratified subset of a "
                    "dataset's train split and compare test accuracy (soft and hard vote), "
                    "training time per epoch and inference speed.")
    parser.add_argument("data", help="dataset path with a predefined train/test split "
                                     "(e.g. a FER2013 image folder with train/ and test/)")
    parser.add_argument("--data-format", dest="format", default="auto", choices=FORMAT_CHOICES, metavar="FORMAT",
                        help="the dataset's format, as for training (default: auto-detect)")
    parser.add_argument("--train-per-class", type=int, default=150,
                        help="training images per class (default %(default)s; 0 = all)")
    parser.add_argument("--test-per-class", type=int, default=150,
                        help="test images per class (default %(default)s; 0 = all)")
    parser.add_argument("--split-after", type=int, nargs="+", choices=SPLIT_POINTS,
                        default=list(SPLIT_POINTS), help="split points to compare (default 0 1 2 3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=135, help="batch size (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the subsets and of every model (default %(default)s)")
    parser.add_argument("--json-out", help="also write the settings and rows to this JSON file")
    parser.add_argument("--work-dir", help="where fit_model keeps its checkpoints "
                                           "(default: a temporary folder, removed at the end)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch training log")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.train_per_class < 0 or args.test_per_class < 0:
        parser.error("--train-per-class and --test-per-class must be >= 0")
    if not Path(args.data).exists():
        parser.error(f"{args.data}: no such file or folder")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import tensorflow as tf

    from csa_keras.training import load_data
    from csa_keras.training.strategy import describe, get_strategy
    from voting_resnet.config import preset

    split_points = list(dict.fromkeys(args.split_after))
    try:
        config = preset("paper").replace(
            data=args.data, format=args.format, epochs=args.epochs, batch_size=args.batch_size,
            seed=args.seed, split_after=tuple(split_points), channels=3).validate()
        dataset = load_data(config, progress=not args.quiet, colour=True)
        train = stratified_subset(dataset.labels, _split_index(dataset, "train", args.data),
                                  args.train_per_class, args.seed)
        test = stratified_subset(dataset.labels, _split_index(dataset, "test", args.data),
                                 args.test_per_class, args.seed + 1)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = list(dataset.class_names)
    strategy = get_strategy(config.strategy)
    settings = {
        "dataset": dataset.name,
        "data": str(args.data),
        "class_names": names,
        "n_train": len(train),
        "n_test": len(test),
        "train_class_counts": dataset.class_counts(train),
        "test_class_counts": dataset.class_counts(test),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "lr_decay_per_epoch": config.lr_decay,
        "augment": config.augment,
        "seed": config.seed,
        "strategy": describe(strategy),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_logical_devices("GPU")),
    }
    last_lr = config.lr * config.lr_decay ** (config.epochs - 1)
    print(f"# Voting ResNet split points on {dataset.name}: {len(train)} train / {len(test)} test "
          f"images ({args.train_per_class or 'all'} / {args.test_per_class or 'all'} per class, "
          f"seed {config.seed})")
    print(f"# Schedule: Adam lr {config.lr:g} x {config.lr_decay} after every epoch "
          f"(last epoch {last_lr:.3g}), {config.epochs} epoch{'s' if config.epochs > 1 else ''}, "
          f"batch {config.batch_size}, "
          f"augmentation {'on' if config.augment else 'off'}, cross-entropy on every crop, "
          f"no validation (weights of the lowest training loss kept), same seed for every "
          f"split point; {settings['strategy']['strategy']}, {settings['cpu_count']} CPUs, "
          f"{settings['gpus']} GPUs")

    images, labels = dataset.images, dataset.labels
    verbose = 0 if args.quiet else 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="vrn_split_points_") as scratch:
        folder = Path(args.work_dir) if args.work_dir else Path(scratch)
        for split_after in split_points:
            print(f"# training split_after={split_after}", file=sys.stderr, flush=True)
            rows.append(benchmark_split(config, split_after, images[train], labels[train],
                                        images[test], labels[test], names, folder, strategy,
                                        verbose))
    print()
    print(markdown_table(rows))
    print()
    for row in rows:
        print(json.dumps({"dataset": dataset.name, "n_train": len(train), "n_test": len(test),
                          "epochs": config.epochs, "batch_size": config.batch_size, **row}))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
