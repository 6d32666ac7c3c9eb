"""Table 2 of the VRN paper: parameters, GMACs and forward-pass size per architecture.

``python -m voting_resnet.profile [--json] [--measure]`` builds the five
architectures of the paper's Table 2 (the baseline at 40x40 and 48x48, and
the splits after modules 1, 2 and 3 at 48x48) and reports, per image:

- ``trainable_params``: 11,172,423 for every row (7 classes, 3 channels).
- ``gmacs``: multiply-accumulates of the convolutions and the Dense layer,
  ``out_h * out_w * k_h * k_w * c_in * c_out / groups`` per convolution and
  ``in * out`` for the Dense layer, times the number of views (1, or 10 after
  the crop layer) flowing through it. The paper calls these "GFLOPs"; they
  agree with its figures within 1%. ``gmacs_with_bn`` adds 4 operations per
  BatchNormalization element, the count of fvcore's batch-norm handle, and
  reproduces all five of the paper's figures (0.87 / 1.26 / 6.66 / 4.85 /
  3.05) to their two decimals, which suggests that is how they were counted.
- ``forward_mb``: the float32 size, in MiB (2**20 bytes, the unit that fits
  the paper), of the activations a training forward pass keeps for the
  backward pass: the input image, every convolution output (BatchNorm's
  backward needs its input), every ReLU output (its own backward and the next
  convolution's weight gradient need it), the crop stack (the next
  convolution's input) and the pooled features (the Dense layer's input);
  BatchNorm outputs and residual sums are consumed at once and freed. This is
  what the paper's ``torch.cuda.memory_allocated()`` delta measures, and it
  gives the paper's 7.00 / 10.08 / 40.34 / 23.34 / 14.84 MB to the hundredth.
  ``forward_mb_decimal`` is the same in 10**6 bytes; ``forward_ratio`` is the
  ratio to the 48x48 baseline (paper: 0.69 / 1 / 4.00 / 2.32 / 1.47).
- ``measured_peak_mb_per_image`` (``--measure``, slow): the peak resident
  memory per image of a training-mode forward pass under
  ``tf.GradientTape`` on this machine (so the activations for the backward
  pass are held, as in the paper's measurement): two fresh subprocesses run
  batches of different sizes, and the difference of their peak RSS
  (``resource.getrusage``) divided by the difference of the batch sizes
  cancels the memory of the framework and the weights.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from csa_keras.utils.cli import Parser
from voting_resnet.layers.crop_and_mirror import CropAndMirror
from voting_resnet.layers.voting import Regroup
from voting_resnet.models.resnet18 import build_voting_resnet

#: The paper's Table 2: (split_after, input_size) -> (label, GFLOPs, forward pass MB).
PAPER_TABLE2 = {
    (0, 40): ("Baseline", 0.87, 7.00),
    (0, 48): ("Baseline", 1.26, 10.08),
    (1, 48): ("Cropping after Module 1", 6.66, 40.34),
    (2, 48): ("Cropping after Module 2", 4.85, 23.34),
    (3, 48): ("Cropping after Module 3", 3.05, 14.84),
}
REFERENCE_ROW = (0, 48)
BYTES_PER_ELEMENT = 4
MIB = 2 ** 20
BN_OPS_PER_ELEMENT = 4
DEFAULT_MEASURE_BATCHES = (2, 18)


def _layer_views(model):
    """``(layer, views)`` in topological order, ``views`` the rows per image of the layer's output.

    Nested models are walked through. A crop layer multiplies the views and a
    regroup divides them; in a model
    whose crop layer every path crosses (a split network), each layer after it
    in ``model.layers`` runs on every view.
    """
    views = 1
    for layer in _flat_layers(model):
        if isinstance(layer, CropAndMirror):
            views *= layer.num_views
        elif isinstance(layer, Regroup):
            views //= layer.num_views
        yield layer, views


def _flat_layers(model):
    """The layers of ``model`` in order, those of a nested model (the CSA's encoder, decoder) in its place."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def _elements(shape) -> int:
    return int(np.prod([int(d) for d in shape[1:]]))


def count_macs(model, include_batchnorm: bool = False) -> int:
    """Multiply-accumulates per image of the Conv2D and Dense layers of ``model``.

    With ``include_batchnorm``, adds :data:`BN_OPS_PER_ELEMENT` per
    BatchNormalization output element (the convention that reproduces the
    paper's rounded figures).
    """
    total = 0
    for layer, views in _layer_views(model):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin_per_group, cout = layer.kernel.shape
            _, out_h, out_w, _ = layer.output.shape
            total += views * out_h * out_w * kh * kw * cin_per_group * cout
        elif isinstance(layer, keras.layers.Dense):
            total += views * _elements(layer.input.shape) * layer.kernel.shape[1]
        elif include_batchnorm and isinstance(layer, keras.layers.BatchNormalization):
            total += views * BN_OPS_PER_ELEMENT * _elements(layer.output.shape)
    return int(total)


def forward_elements(model) -> int:
    """Activation elements per image kept by a training forward pass (module docstring)."""
    kept = (keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.ReLU, CropAndMirror,
            keras.layers.GlobalAveragePooling2D)
    total = 0
    for layer, views in _layer_views(model):
        if isinstance(layer, kept) or (isinstance(layer, keras.layers.Activation)
                                       and layer.get_config().get("activation") == "relu"):
            total += views * _elements(layer.output.shape)
    return int(total)


def trainable_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _build(split_after: int, input_size: int, num_classes: int, channels: int = 3):
    return build_voting_resnet(num_classes=num_classes, input_shape=(input_size, input_size, channels),
                               split_after=split_after)


def _peak_rss_child(split_after: int, input_size: int, batch: int, num_classes: int) -> int:
    """Peak RSS in bytes of a process that runs one training-mode forward pass under a tape."""
    model = _build(split_after, input_size, num_classes)
    images = tf.random.uniform((batch, input_size, input_size, 3), seed=0)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        total = tf.reduce_sum(outputs["crop_logits"])
    del tape, total
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_peak_mb_per_image(split_after: int, input_size: int, num_classes: int = 7,
                              batches: tuple[int, int] = DEFAULT_MEASURE_BATCHES) -> float:
    """Measured peak MiB per image of a training forward pass (module docstring), CPU RSS."""
    small, large = sorted(int(b) for b in batches)
    if small < 1 or large <= small:
        raise ValueError(f"batches must be two different positive sizes. Received: batches={batches!r}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    peaks = []
    for batch in (small, large):
        command = [sys.executable, "-c", "import sys; from voting_resnet.profile import _peak_rss_child; "
                   "print(_peak_rss_child(*map(int, sys.argv[1:])))",
                   str(split_after), str(input_size), str(batch), str(num_classes)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"memory measurement of split {split_after} at {input_size}px "
                               f"batch {batch} failed: {tail[0]}")
        peaks.append(int(done.stdout.strip().splitlines()[-1]))
    return (peaks[1] - peaks[0]) / (large - small) / MIB


def profile_rows(num_classes: int = 7, measure: bool = False,
                 measure_batches: tuple[int, int] = DEFAULT_MEASURE_BATCHES,
                 progress: bool = False) -> list[dict]:
    """One dict per row of the paper's Table 2 (module docstring for every key)."""
    rows = []
    for split_after, input_size in tqdm(PAPER_TABLE2, desc="profiling", unit="model",
                                        disable=not progress, file=sys.stderr):
        model = _build(split_after, input_size, num_classes)
        label, paper_gmacs, paper_mb = PAPER_TABLE2[(split_after, input_size)]
        forward_bytes = BYTES_PER_ELEMENT * forward_elements(model)
        rows.append({
            "architecture": label,
            "split_after": split_after,
            "input_size": input_size,
            "num_views": model.get_layer("crop_logits").num_views,
            "trainable_params": trainable_parameters(model),
            "gmacs": count_macs(model) / 1e9,
            "gmacs_with_bn": count_macs(model, include_batchnorm=True) / 1e9,
            "forward_mb": forward_bytes / MIB,
            "forward_mb_decimal": forward_bytes / 1e6,
            "paper_gmacs": paper_gmacs,
            "paper_forward_mb": paper_mb,
            "paper_forward_ratio": round(paper_mb / PAPER_TABLE2[REFERENCE_ROW][2], 4),
            "measured_peak_mb_per_image": (
                measure_peak_mb_per_image(split_after, input_size, num_classes, measure_batches)
                if measure else None),
        })
        del model
        keras.backend.clear_session()
    reference = next(r for r in rows if (r["split_after"], r["input_size"]) == REFERENCE_ROW)
    for row in rows:
        row["forward_ratio"] = row["forward_mb"] / reference["forward_mb"]
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The rows as a markdown table, ours beside the paper's figures."""
    header = ["Architecture", "Input", "Trainable params", "GMACs", "GMACs+BN", "paper GFLOPs",
              "Forward MB", "ratio", "paper MB", "paper ratio"]
    measured = any(r["measured_peak_mb_per_image"] is not None for r in rows)
    if measured:
        header.append("measured MB/img")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["architecture"], f"{r['input_size']}x{r['input_size']}", f"{r['trainable_params']:,}",
                 f"{r['gmacs']:.3f}", f"{r['gmacs_with_bn']:.3f}", f"{r['paper_gmacs']:.2f}",
                 f"{r['forward_mb']:.2f}", f"{r['forward_ratio']:.3f}", f"{r['paper_forward_mb']:.2f}",
                 f"{r['paper_forward_ratio']:.3f}"]
        if measured:
            cells.append(f"{r['measured_peak_mb_per_image']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m voting_resnet.profile",
        description="Reproduce Table 2 of the Voting ResNet paper: trainable parameters, GMACs and "
                    "forward-pass size per image of the baseline and the three split points.")
    parser.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    parser.add_argument("--num-classes", type=int, default=7, help="classes K (default 7, as the paper)")
    parser.add_argument("--measure", action="store_true",
                        help="also measure the peak memory per image of a training forward pass "
                             "on this machine (slow: two subprocesses per row)")
    parser.add_argument("--measure-batches", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        default=DEFAULT_MEASURE_BATCHES,
                        help="the two batch sizes whose peak-RSS difference --measure divides "
                             "(default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_classes < 2:
        parser.error(f"--num-classes must be at least 2. Received: --num-classes {args.num_classes}")
    small, large = args.measure_batches
    if min(small, large) < 1 or small == large:
        parser.error(f"--measure-batches must be two different positive sizes. "
                     f"Received: --measure-batches {small} {large}")
    rows = profile_rows(num_classes=args.num_classes, measure=args.measure,
                        measure_batches=(small, large), progress=not args.quiet)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
