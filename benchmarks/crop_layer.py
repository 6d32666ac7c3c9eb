"""The crop-and-mirror layer alone: one gather against ten slices, a flip and a stack.

:class:`voting_resnet.layers.CropAndMirror` takes its ten views with one
``take`` of precomputed pixel positions. The plain way, kept here as the
baseline, slices five crops from the map and five from its mirror and stacks
them. Both give identical outputs (checked before timing); this times each
forward, and forward plus gradient, on the feature maps the layer cuts in the
Voting ResNet at batch 135 (after module 1: 48x48x64, 2: 24x24x128,
3: 12x12x256), median of ``--repeats`` calls of a compiled ``tf.function``.

    python benchmarks/crop_layer.py [--batch 135] [--repeats 7]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import tensorflow as tf
from keras import ops

from voting_resnet.layers import CropAndMirror, crop_offsets

FEATURE_MAPS = {1: (48, 48, 64), 2: (24, 24, 128), 3: (12, 12, 256)}


def sliced_views(layer: CropAndMirror, inputs):
    """The baseline: ten static slices (five of the map, five of its mirror) stacked sample-major."""
    h, w, offsets = crop_offsets(inputs.shape[1], inputs.shape[2], layer.crop_fraction)
    maps = [inputs, ops.flip(inputs, axis=2)] if layer.mirror else [inputs]
    views = [fmap[:, top:top + h, left:left + w, :] for fmap in maps for top, left in offsets]
    return ops.reshape(ops.stack(views, axis=1), (-1, h, w, inputs.shape[-1]))


def _median_ms(fn, x, repeats: int) -> float:
    fn(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def time_layer(call, shape, repeats: int) -> dict[str, float]:
    """Median milliseconds of ``call``'s forward and of its forward plus input gradient."""
    x = tf.random.uniform(shape, seed=0)

    @tf.function
    def forward(x):
        return call(x)

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(call(x)))
        return tape.gradient(loss, x)

    return {"forward_ms": _median_ms(forward, x, repeats),
            "forward_backward_ms": _median_ms(forward_backward, x, repeats)}


def run(batch: int = 135, repeats: int = 7) -> list[dict]:
    layer = CropAndMirror()
    rows = []
    for split, (height, width, channels) in FEATURE_MAPS.items():
        probe = tf.random.uniform((2, height, width, channels), seed=1)
        if not np.array_equal(layer(probe).numpy(), sliced_views(layer, probe).numpy()):
            raise AssertionError(f"gather and slices disagree after module {split}")
        shape = (batch, height, width, channels)
        gather = time_layer(layer, shape, repeats)
        slices = time_layer(lambda x: sliced_views(layer, x), shape, repeats)
        rows.append({"split_after": split, "input": list(shape),
                     **{f"gather_{k}": round(v, 1) for k, v in gather.items()},
                     **{f"slices_{k}": round(v, 1) for k, v in slices.items()},
                     "forward_speedup": round(slices["forward_ms"] / gather["forward_ms"], 2),
                     "forward_backward_speedup": round(
                         slices["forward_backward_ms"] / gather["forward_backward_ms"], 2)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| split after | input | gather fwd ms | slices fwd ms | gather fwd+bwd ms | "
             "slices fwd+bwd ms | fwd+bwd speed-up |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['split_after']} | {'x'.join(map(str, r['input']))} | "
                     f"{r['gather_forward_ms']} | {r['slices_forward_ms']} | "
                     f"{r['gather_forward_backward_ms']} | {r['slices_forward_backward_ms']} | "
                     f"{r['forward_backward_speedup']}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=135)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    rows = run(args.batch, args.repeats)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
