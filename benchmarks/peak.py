"""The machine's own matrix-product peak, and what fraction of it a training step reaches.

A training row's achieved rate is compared with the fastest dense matrix
product this machine runs in the same precision, measured here, not taken
from a data sheet: square ``tf.linalg.matmul`` (and ``torch.matmul`` given a
Python with torch) of several sizes, in float32 and bfloat16, on all cores;
one product per call, as many calls as make about 20 GFLOP (a
graph that repeats one product would have the repeats merged away); each size
is timed ``repeats`` times and the peak is the largest median. bfloat16
is measured by default only on a CPU with bfloat16 instructions (AVX-512
BF16, AMX), the CPUs whose rows include ``mixed_bfloat16``: elsewhere the
product is emulated, one thread at a time, and takes minutes for a figure no
row is set against.

A training step costs ``6 * MACs`` floating-point operations per image: the
forward pass (2 operations per multiply-accumulate) and, in the backward
pass, the gradients with respect to the inputs and to the weights (each as
many again). The MACs are :func:`voting_resnet.profile.count_macs` of the
Conv2D and Dense layers (BatchNorm, ReLU, pooling and the optimizer are left
out, as in the papers' counts); the gradient of the first convolution's input
is counted although no one computes it, under 2% of any row's work.

    python benchmarks/peak.py [--sizes 1024 2048 4096] [--repeats 5] [--torch-python PY] [--json]
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time

SIZES = (1024, 2048, 3072)
FLOPS_PER_MAC_TRAINING = 6
"""Forward (2 per MAC) + input gradient (2) + weight gradient (2)."""
FLOPS_PER_MAC_INFERENCE = 2
"""The forward pass alone."""


def tensorflow_peak(sizes=SIZES, repeats: int = 5, dtypes=("float32", "bfloat16"),
                    work: float = 2e10) -> dict:
    """``{dtype: {"gflops": best median, "per_size": {n: median GFLOP/s}}}`` of ``tf.linalg.matmul``,
    each timing ``work`` floating-point operations' worth of products (at least one)."""
    import tensorflow as tf

    result = {}
    for dtype in dtypes:
        per_size = {}
        for n in sizes:
            a = tf.random.uniform((n, n), dtype=tf.float32)
            b = tf.random.uniform((n, n), dtype=tf.float32)
            a, b = tf.cast(a, dtype), tf.cast(b, dtype)
            calls = max(1, int(work // (2 * n ** 3)))
            run = tf.function(tf.linalg.matmul)
            run(a, b).numpy()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    out = run(a, b)
                out.numpy()
                times.append(time.perf_counter() - start)
            per_size[n] = round(2 * n ** 3 * calls / statistics.median(times) / 1e9, 1)
        result[dtype] = {"gflops": max(per_size.values()), "per_size": per_size}
    return result


_TORCH_PEAK = """
import json, statistics, sys, time, torch
sizes, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for name in json.loads(sys.argv[3]):
    dtype = getattr(torch, name)
    per = {}
    for n in sizes:
        a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
        chain = max(1, int(2e10 // (2 * n ** 3)))
        with torch.no_grad():
            for _ in range(2):
                a @ b
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(chain):
                    a @ b
                times.append(time.perf_counter() - start)
        per[n] = round(2 * n ** 3 * chain / statistics.median(times) / 1e9, 1)
    out[name] = {"gflops": max(per.values()), "per_size": per}
print(json.dumps(out))
"""


def torch_peak(python: str, sizes=SIZES, repeats: int = 5, dtypes=("float32", "bfloat16")) -> dict:
    """The same measurement with ``torch.matmul``, run by ``python`` (which must have torch)."""
    done = subprocess.run([python, "-c", _TORCH_PEAK, json.dumps(list(sizes)), str(repeats),
                           json.dumps(list(dtypes))],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_dtypes() -> tuple[str, ...]:
    """float32, and bfloat16 where the CPU has bfloat16 instructions (not emulated)."""
    from csa_keras.utils.cpu import has_bfloat16

    return ("float32", "bfloat16") if has_bfloat16() else ("float32",)


def measure(sizes=SIZES, repeats: int = 5, torch_python: str | None = None, dtypes=None) -> dict:
    """The peak per precision: the larger of TensorFlow's and (given) torch's matrix products.

    ``dtypes`` defaults to :func:`default_dtypes`.
    """
    dtypes = tuple(dtypes or default_dtypes())
    found = {"tensorflow": tensorflow_peak(sizes, repeats, dtypes)}
    if torch_python:
        found["torch"] = torch_peak(torch_python, sizes, repeats, dtypes)
    peak = {dtype: max(f[dtype]["gflops"] for f in found.values()) for dtype in dtypes}
    return {"peak_gflops": peak, "by_library": found, "sizes": list(sizes), "repeats": repeats}


@functools.cache
def macs_per_image(model_name: str, split: int) -> int:
    """Multiply-accumulates per image of the Conv2D and Dense layers (:func:`voting_resnet.profile.count_macs`)."""
    from voting_resnet.profile import count_macs

    if model_name == "csa":
        from csa_keras.csa.model import build_autoencoder

        return count_macs(build_autoencoder())
    from voting_resnet.models import build_voting_resnet

    return count_macs(build_voting_resnet(7, input_shape=(48, 48, 3), split_after=split))


def training_gflop_per_image(model_name: str, split: int) -> float:
    """GFLOP of one training step per image: :data:`FLOPS_PER_MAC_TRAINING` times the model's MACs."""
    return FLOPS_PER_MAC_TRAINING * macs_per_image(model_name, split) / 1e9


def annotate(rows: list[dict], report: dict) -> list[dict]:
    """Add each row's achieved GFLOP/s and its fraction of the peak of the row's precision.

    A training row does :data:`FLOPS_PER_MAC_TRAINING` operations per MAC
    and image, an inference row :data:`FLOPS_PER_MAC_INFERENCE`; a
    ``mixed_bfloat16`` row is set against the bfloat16 peak, a float32 row
    against the float32 one.
    """
    for row in rows:
        flops = FLOPS_PER_MAC_TRAINING if row["mode"] == "train" else FLOPS_PER_MAC_INFERENCE
        gflop = flops * macs_per_image(row["model"], row["split"]) / 1e9
        peak = report["peak_gflops"].get("bfloat16" if "bfloat16" in row.get("precision", "") else "float32")
        row["gflop_per_image"] = round(gflop, 4)
        for side in ("keras", "reference"):
            if f"{side}_median" in row:
                row[f"{side}_gflops"] = round(gflop * row[f"{side}_median"], 1)
                if peak is not None:
                    row[f"{side}_fraction_of_peak"] = round(gflop * row[f"{side}_median"] / peak, 3)
    return rows


def markdown(report: dict) -> str:
    lines = ["| precision | peak GFLOP/s | " + " | ".join(f"{lib} best" for lib in report["by_library"])
             + " | sizes |", "|---|---:|" + "---:|" * len(report["by_library"]) + "---|"]
    for dtype, peak in report["peak_gflops"].items():
        best = " | ".join(f"{f[dtype]['gflops']:.0f}" for f in report["by_library"].values())
        lines.append(f"| {dtype} | {peak:.0f} | {best} | {', '.join(map(str, report['sizes']))} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-python", help="a Python that has torch: also measure torch.matmul")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args(argv)
    report = measure(args.sizes, args.repeats, args.torch_python)
    print(json.dumps(report) if args.json else markdown(report))


if __name__ == "__main__":
    sys.exit(main())
