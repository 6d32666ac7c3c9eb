"""Training images/s end to end (``fit`` with the input pipeline and augmentation) against the model alone.

A training run's speed is not the model's: every batch is also shuffled,
scaled and augmented, and on two cores the input pipeline's threads take
the cores the model's kernels would use. This benchmark trains the Voting
ResNet through the function every training command uses
(:func:`voting_resnet.training.fit_model`: the cached, shuffled ``tf.data``
pipeline, the augmentation on whole batches, the recipe's optimizer and
loss) on random 48x48 colour images, and beside it, in the same process and
alternated epoch by epoch, the same compiled model stepping on one batch
that is already in memory (the ``throughput.py`` model-only row). The
figure is the median images/s over the epochs after the first (which
traces and fills the cache), and the ratio end to end / model only.

Variants of the pipeline (``--variants``):

- ``augment``: the training pipeline as runs use it (augmentation on;
  recipe ``converge``: the paper's augmentation plus a horizontal flip);
- ``plain``: the same without augmentation, to see what augmenting costs.

    python benchmarks/end_to_end.py [--split 0] [--images 1280] [--epochs 4] [--batch 64]
    python benchmarks/end_to_end.py --model-only 5 [--split 0] [--batch 64]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("augment", "plain")


def _model_only_epoch(model, x, y, steps: int) -> float:
    """Seconds of ``steps`` training steps on one batch held in memory (after the first call traced)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


@contextlib.contextmanager
def _policy(precision: str):
    """The global dtype policy of ``precision`` while the block runs, as a run sets it (so
    ``fit_model`` builds its model under it too); the one before is restored after. Yields the
    policy's name."""
    import keras

    from csa_keras.training.strategy import set_precision

    before = keras.mixed_precision.global_policy().name
    try:
        yield set_precision(precision)
    finally:
        keras.mixed_precision.set_global_policy(before)


def _compiled(split: int, batch: int, steps: int, epochs: int, seed: int = 0,
              precision: str = "auto"):
    """The model compiled with the ``converge`` recipe under the policy in force (its config
    saying ``precision``), and one batch of it in memory."""
    from voting_resnet.comparison import RECIPES
    from voting_resnet.models import build_voting_resnet
    from voting_resnet.training import compile_voting_resnet, learning_rate

    recipe = RECIPES["converge"].replace(split_after=(split,), batch_size=batch, epochs=epochs,
                                         precision=precision)
    model = build_voting_resnet(7, input_shape=(48, 48, 3), split_after=split)
    schedule, _ = learning_rate(recipe, steps, epochs)
    compile_voting_resnet(model, schedule, recipe.weight_decay, recipe.label_smoothing)
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 48, 48, 3), dtype=np.float32)
    labels = rng.integers(0, 7, batch)
    return recipe, model, x, {"crop_logits": labels, "vote": labels}


def model_only(split: int = 0, batch: int = 64, steps: int = 5, repeats: int = 5,
               precision: str = "auto") -> dict:
    """The model-only figure alone: median images/s of ``repeats`` runs of ``steps`` steps on one
    batch in memory, after one traced step; to set beside a real run's own history."""
    importlib.import_module("csa_keras")
    from csa_keras.utils.cpu import onednn_state

    with _policy(precision) as policy:
        _, model, x, y = _compiled(split, batch, steps, 1, precision=precision)
        _model_only_epoch(model, x, y, 1)
        rates = [steps * batch / _model_only_epoch(model, x, y, steps) for _ in range(repeats)]
    return {"split": split, "batch": batch, "steps": steps, "repeats": repeats,
            "model_only_images_per_s": round(statistics.median(rates), 2),
            "runs": [round(r, 2) for r in rates], "onednn": onednn_state()["onednn"],
            "precision_policy": policy}


def measure(split: int = 0, images: int = 1280, epochs: int = 4, batch: int = 64,
            variants=VARIANTS, seed: int = 0, precision: str = "auto", log=print) -> list[dict]:
    """One row per variant: end-to-end and model-only images/s, their ratio, every epoch's figure;
    under ``precision``'s dtype policy (``precision_policy`` in each row)."""
    importlib.import_module("csa_keras")
    import keras

    from csa_keras.training.strategy import get_strategy
    from csa_keras.utils.cpu import onednn_state
    from voting_resnet.training import fit_model

    with _policy(precision) as policy:
        rng = np.random.default_rng(seed)
        faces = rng.integers(0, 256, (images, 48, 48, 3), dtype=np.uint8)
        labels = rng.integers(0, 7, images)
        steps = images // batch
        recipe, model, x, y = _compiled(split, batch, steps, epochs, seed, precision)
        strategy = get_strategy("auto")
        _model_only_epoch(model, x, y, 1)

        rows = []
        for variant in variants:
            config = recipe.replace(augment=variant == "augment")
            with tempfile.TemporaryDirectory() as folder:
                log(f"{variant}: fit on {images} images, {epochs} epochs, batch {batch}")
                result = fit_model(config, split, faces, labels, 7, Path(folder), strategy, verbose=0)
            end_to_end = [images / s for s in result.history["epoch_seconds"][1:]]
            alone_epochs = [steps * batch / _model_only_epoch(model, x, y, steps)
                            for _ in range(len(end_to_end))]
            e2e, alone = statistics.median(end_to_end), statistics.median(alone_epochs)
            rows.append({"split": split, "variant": variant, "batch": batch, "images": images,
                         "epochs": epochs, "end_to_end_images_per_s": round(e2e, 2),
                         "model_only_images_per_s": round(alone, 2), "ratio": round(e2e / alone, 3),
                         "end_to_end_epochs": [round(v, 2) for v in end_to_end],
                         "model_only_epochs": [round(v, 2) for v in alone_epochs],
                         "onednn": onednn_state()["onednn"], "keras": keras.__version__,
                         "precision_policy": policy})
        return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | precision | pipeline | batch | end to end img/s | model only img/s | ratio |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        model = "VRN baseline" if r["split"] == 0 else f"VRN split after {r['split']}"
        lines.append(f"| {model} | {r.get('precision_policy', 'float32')} | {r['variant']} | "
                     f"{r['batch']} | {r['end_to_end_images_per_s']:.2f} "
                     f"| {r['model_only_images_per_s']:.2f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    from csa_keras.training.config import PRECISIONS
    from voting_resnet.models.resnet18 import SPLIT_POINTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=0, choices=SPLIT_POINTS)
    parser.add_argument("--images", type=int, default=1280, help="training images (default 1280)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is not counted")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--model-only", type=int, metavar="STEPS",
                        help="measure only the model on a batch in memory: 5 runs of STEPS steps "
                             "(to set beside a real run's history)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the dtype policy (default auto, as the recipes: mixed_bfloat16 on a "
                             "CPU with AVX-512 BF16 or AMX, float32 elsewhere)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.model_only:
        print(json.dumps(model_only(args.split, args.batch, args.model_only,
                                    precision=args.precision)))
        return
    if args.epochs < 2 or args.images < args.batch:
        parser.error("--epochs must be at least 2 and --images at least --batch")
    rows = measure(args.split, args.images, args.epochs, args.batch, args.variants,
                   precision=args.precision)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
