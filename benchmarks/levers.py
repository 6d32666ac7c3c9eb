"""What each performance lever buys: one training or inference row under named variants, side by side.

Each variant is a fresh process (``throughput.py``'s child), and the variants
alternate (A B C A B C ...) ``--repeats`` times, so load that comes and goes
hits all of them; the table gives the median images/s and the median of each
variant's ratio to ``default`` within the same round.

Variants (a lever is applied in the child before the model is built):

``default``
    the project as shipped.
``keras_bn``
    every ``BatchNorm`` computes as Keras's own ``BatchNormalization`` does
    (a composition of ``moments`` and ``batch_normalization``: a dozen
    element-wise ops and reductions, in float32 under a mixed policy)
    instead of TensorFlow's fused kernel (one oneDNN op for the statistics
    and the normalisation, one for all three gradients), the project's
    choice (:mod:`csa_keras.layers.batch_norm`).
``inter_op_1``
    one inter-op thread, so two large convolutions never share the two
    cores (``tf.config.threading.set_inter_op_parallelism_threads(1)``).
``intra_op_1``
    one intra-op thread: each op on one core, two ops at once on the two
    cores (``tf.config.threading.set_intra_op_parallelism_threads(1)``),
    the other way of never oversubscribing them.
``onednn_off``
    ``TF_ENABLE_ONEDNN_OPTS=0``: TensorFlow's Eigen kernels instead of oneDNN
    (TensorFlow's own default on an x86 CPU without AVX-512 VNNI, BF16 or AMX).
``onednn_on``
    ``TF_ENABLE_ONEDNN_OPTS=1``: oneDNN, what the project chooses on every
    x86-64 CPU with AVX2 (:mod:`csa_keras.utils.cpu`), whatever the default.
``xla``
    ``jit_compile=True`` on the compiled model.
``arena_2``
    ``MALLOC_ARENA_MAX=2``: glibc's allocator keeps two arenas instead of
    one per thread that allocates, a lever on peak memory rather than time.
``system_allocator``
    ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1``: TensorFlow's oneDNN ops allocate
    with malloc instead of their own pool, a lever on peak memory.
``slices_crop``
    the Voting ResNet's crop-and-mirror as the reference computes it (ten
    slices of the map and of its flipped copy, stacked) instead of one
    gather, to measure what the gather's gradient holds.

``--batch`` overrides the row's batch (the papers' 32 and 135): peak memory
at two batches gives the memory per image apart from what every run holds
(the framework, the weights and Adam's slots).

    python benchmarks/levers.py --row csa|vrn0|vrn1|vrn2|vrn3 --mode train|infer
        [--precision float32|mixed_bfloat16] [--variants default keras_bn ...] [--repeats 3] [--steps N]
        [--batch B] [--isa native|avx2]

``--isa avx2`` caps both the variants' instruction set as ``throughput.py``
does (oneDNN's ``ONEDNN_MAX_CPU_ISA``), to try a lever for AVX2 CPUs on a
newer one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import throughput

VARIANTS = ("default", "keras_bn", "inter_op_1", "intra_op_1", "onednn_off", "onednn_on", "xla", "arena_2",
            "system_allocator", "slices_crop")
ENVIRONMENT = {"onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "onednn_on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
               "arena_2": {"MALLOC_ARENA_MAX": "2"},
               "system_allocator": {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"}}


def unfuse_batch_norm() -> None:
    """Make every :class:`csa_keras.layers.BatchNorm` compute with Keras's ``BatchNormalization.call``."""
    import keras

    from csa_keras.layers import BatchNorm

    BatchNorm.call = keras.layers.BatchNormalization.call


def slice_crops() -> None:
    """Make every ``CropAndMirror`` cut its views with slices, a flip and a stack (the reference's way)."""
    from keras import ops

    from voting_resnet.layers.crop_and_mirror import CropAndMirror, crop_offsets

    def call(self, inputs):
        h, w, offsets = crop_offsets(int(inputs.shape[1]), int(inputs.shape[2]), self.crop_fraction)
        maps = (inputs, ops.flip(inputs, axis=2)) if self.mirror else (inputs,)
        views = [m[:, top:top + h, left:left + w, :] for m in maps for top, left in offsets]
        return ops.reshape(ops.stack(views, axis=1), (-1, h, w, inputs.shape[-1]))

    CropAndMirror.call = call


def apply(variant: str) -> dict:
    """Apply ``variant`` in this process; return the ``compile`` overrides it needs."""
    if variant == "keras_bn":
        unfuse_batch_norm()
    elif variant == "slices_crop":
        slice_crops()
    elif variant in ("inter_op_1", "intra_op_1"):
        import tensorflow as tf

        setter = getattr(tf.config.threading, f"set_{variant[:5]}_op_parallelism_threads")
        setter(1)
    elif variant == "xla":
        return {"jit_compile": True}
    return {}


def child(variant: str, row: str, mode: str, steps: int, warmup: int, precision: str,
          batch: int = 0) -> dict:
    """One measurement of ``row`` with ``variant`` applied (the model recompiled with its overrides)."""
    overrides = apply(variant)
    model_name, split = throughput.ROWS[row]
    if batch:
        throughput.BATCH[model_name] = batch
    if overrides:
        import keras

        compile_model = keras.Model.compile

        def compile_with_overrides(self, *args, **kwargs):
            return compile_model(self, *args, **{**kwargs, **overrides})

        keras.Model.compile = compile_with_overrides
    line = throughput.keras_row(model_name, split, mode, steps, warmup, precision)
    return {**line, "variant": variant}


def measure(row: str, mode: str, precision: str, variants, repeats: int, steps: int,
            log=print, batch: int = 0, isa: str = "native") -> list[dict]:
    """Each variant's images/s, alternated ``repeats`` times; ``isa`` caps the instruction set
    of every variant alike (``throughput.ISA_CAPS``)."""
    model_name, _ = throughput.ROWS[row]
    warmup = 3 if model_name == "csa" else 1
    runs: dict[str, list[float]] = {v: [] for v in variants}
    rss: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    for repeat in range(repeats):
        this_round = {}
        for variant in variants:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", variant, row, mode,
                       str(steps), str(warmup), precision, str(batch)]
            env = {**os.environ, **throughput.ISA_CAPS.get(isa, {}), **ENVIRONMENT.get(variant, {})}
            line, peak = throughput.run_measured(command, env=env)
            this_round[variant] = line["images_per_s"]
            runs[variant].append(line["images_per_s"])
            rss[variant].append(peak)
            log(f"{row} {mode} {precision} {isa} {variant} run {repeat + 1}/{repeats}: "
                f"{line['images_per_s']:.2f} img/s")
        if "default" in this_round:
            for variant, value in this_round.items():
                ratios[variant].append(value / this_round["default"])
    return [{"row": row, "mode": mode, "precision": precision, "isa": throughput.isa_name(isa),
             "variant": v,
             "batch": batch or throughput.BATCH[model_name],
             "images_per_s": runs[v], "median": statistics.median(runs[v]),
             "median_ratio_to_default": round(statistics.median(ratios[v]), 3) if ratios[v] else None,
             "peak_rss_mb": max((r for r in rss[v] if r is not None), default=None)}
            for v in variants]


def markdown(results: list[dict]) -> str:
    lines = ["| row | mode | batch | precision | ISA | variant | img/s (median) | vs default | peak RSS MB |",
             "|---|---|---:|---|---|---|---:|---:|---:|"]
    for r in results:
        ratio = "" if r["median_ratio_to_default"] is None else f"{r['median_ratio_to_default']:.2f}x"
        rss = "n/a" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        lines.append(f"| {throughput.ROW_LABELS[r['row']]} | {r['mode']} | {r['batch']} | {r['precision']} | "
                     f"{r.get('isa', 'native')} | {r['variant']} | {r['median']:.2f} | {ratio} | {rss} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        variant, row, mode, steps, warmup, precision, batch = sys.argv[2:9]
        print(json.dumps(child(variant, row, mode, int(steps), int(warmup), precision, int(batch))),
              flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", choices=sorted(throughput.ROWS), required=True)
    parser.add_argument("--mode", choices=throughput.MODES, default="train")
    parser.add_argument("--precision", choices=throughput.PRECISIONS, default="float32")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["default", "keras_bn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, help="timed steps per run (default: throughput.py's)")
    parser.add_argument("--batch", type=int, default=0,
                        help="images per step instead of the row's own (32 for the CSA, 135 for the VRN)")
    parser.add_argument("--isa", choices=["native", *throughput.ISA_CAPS], default="native",
                        help="the instruction set of every variant: native, or capped (float32)")
    parser.add_argument("--json-out", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.isa != "native" and args.precision != "float32":
        parser.error(f"--isa {args.isa} measures float32 only, got --precision {args.precision}")
    steps = args.steps or (20 if throughput.ROWS[args.row][0] == "csa" else 2)
    results = measure(args.row, args.mode, args.precision, list(dict.fromkeys(args.variants)),
                      args.repeats, steps, log=lambda m: print(m, file=sys.stderr, flush=True),
                      batch=args.batch, isa=args.isa)
    print(markdown(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
