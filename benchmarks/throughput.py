"""Training and inference throughput of both models, side by side with a PyTorch reference.

One row per model and mode: the CSA autoencoder (batch 32, the CSA paper's)
and the Voting ResNet-18 with no split and split after modules 1, 2 and 3
(batch 135, the VRN paper's), each in ``train`` (one optimizer step: forward,
loss, backward, update, through ``model.fit``) and ``infer`` (a forward pass
through ``model.predict_on_batch``, what :class:`csa_keras.inference.Predictor`
calls). Like the reference, every step sees the same in-memory batch of
random images, so the figures measure the model, not the input pipeline
(``input_pipeline.py`` measures that).

Every measurement runs in a fresh process, so its peak resident memory is the
row's own (``VmHWM``, see :func:`run_measured`). With ``--torch-python`` (a
Python that has torch: ``pip install -e .[bench]``), each row alternates Keras
and PyTorch reference runs (A B A B ...) ``--repeats`` times and reports the
median of the per-pair ratios, so that load which comes and goes on a shared
machine hits both. The reference is ``torch_reference.py`` beside this file
unless ``--reference`` names another script with its command line
(``--model csa|vrn --split K --mode train|infer --steps N --precision
float32|bfloat16``, printing one JSON line with ``images_per_s``).

``--precision`` measures every row under each Keras dtype policy given:
``float32`` and ``mixed_bfloat16``, against the reference's ``float32`` and
``bfloat16`` (``torch.autocast``) respectively; by default both on a CPU
with bfloat16 instructions (AVX-512 BF16, AMX), float32 alone elsewhere.

    python benchmarks/throughput.py [--rows csa vrn0 vrn1 vrn2 vrn3] [--modes train infer]
        [--precision float32 mixed_bfloat16] [--repeats 3] [--torch-python PY [--reference SCRIPT]]
        [--json-out FILE]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = {"csa": ("csa", 0), "vrn0": ("vrn", 0), "vrn1": ("vrn", 1), "vrn2": ("vrn", 2),
        "vrn3": ("vrn", 3)}
MODES = ("train", "infer")
BATCH = {"csa": 32, "vrn": 135}
ROW_LABELS = {"csa": "CSA autoencoder", "vrn0": "VRN baseline", "vrn1": "VRN split after 1",
              "vrn2": "VRN split after 2", "vrn3": "VRN split after 3"}
ISA_CAPS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}
"""The instruction sets a row can be capped to, as the environment of both sides' processes:
oneDNN's ``ONEDNN_MAX_CPU_ISA`` (TensorFlow's and PyTorch's convolutions) and PyTorch's
``ATEN_CPU_CAPABILITY`` (its own element-wise kernels). TensorFlow's Eigen kernels are built for
AVX whatever the CPU, so they need no cap."""
ISA_RANK = ("sse41", "avx2", "avx512", "amx")
PRECISIONS = ("float32", "mixed_bfloat16")
"""The Keras dtype policies a row can be measured under."""
TORCH_PRECISION = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
"""The reference's ``--precision`` for each Keras policy: bfloat16 is ``torch.autocast`` on the CPU."""
DEFAULT_REFERENCE = Path(__file__).resolve().with_name("torch_reference.py")
"""The project's PyTorch reference of both models, run when only ``--torch-python`` is given."""


def _build(model_name: str, split: int):
    """The model compiled as the project's training compiles it, and one batch of inputs and targets."""
    import numpy as np

    rng = np.random.default_rng(0)
    batch = BATCH[model_name]
    if model_name == "csa":
        from csa_keras.csa.model import build_autoencoder
        from csa_keras.csa.training import compile_autoencoder

        x = rng.random((batch, 48, 48, 1), dtype=np.float32)
        return compile_autoencoder(build_autoencoder(), 1e-3), x, x
    from voting_resnet.models import build_voting_resnet
    from voting_resnet.training import compile_voting_resnet

    x = rng.random((batch, 48, 48, 3), dtype=np.float32)
    labels = rng.integers(0, 7, batch)
    model = build_voting_resnet(7, input_shape=(48, 48, 3), split_after=split)
    return compile_voting_resnet(model, 2e-4), x, {"crop_logits": labels, "vote": labels}


def keras_row(model_name: str, split: int, mode: str, steps: int, warmup: int,
              precision: str = "float32") -> dict:
    """Images per second of ``steps`` timed steps after ``warmup`` untimed ones (the first traces).

    ``precision`` is the global Keras dtype policy the model is built under. The project is
    imported first, so TensorFlow loads with the kernels the project chooses for this CPU
    (:mod:`csa_keras.utils.cpu`); the line records which ran.
    """
    importlib.import_module("csa_keras")
    import keras
    import tensorflow as tf

    from csa_keras.utils.cpu import onednn_state

    keras.mixed_precision.set_global_policy(precision)
    model, x, y = _build(model_name, split)
    batch = len(x)
    if mode == "train":
        ends: list[float] = []
        stamp = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs=None: ends.append(time.perf_counter()))
        data = tf.data.Dataset.from_tensors((x, y)).repeat()
        model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[stamp])
        elapsed = ends[-1] - ends[warmup - 1]
    else:
        for _ in range(warmup):
            model.predict_on_batch(x)
        start = time.perf_counter()
        for _ in range(steps):
            model.predict_on_batch(x)
        elapsed = time.perf_counter() - start
    return {"model": model_name, "split": split, "mode": mode, "batch": batch, "precision": precision,
            "images_per_s": round(batch * steps / elapsed, 2),
            "params": int(sum(int(w.numpy().size) for w in model.trainable_weights)),
            "onednn": onednn_state()["onednn"]}


def _high_water_mb(pid: int) -> float | None:
    """``VmHWM`` of a running process (its peak resident memory so far), or None when unreadable.

    An exited process not yet reaped (a zombie) has no memory and reads 0 or nothing.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_measured(command: list[str], poll_s: float = 0.1,
                 env: dict | None = None) -> tuple[dict, float | None]:
    """Run ``command``; return the JSON line it printed last and its peak resident memory (MB).

    The peak is the child's ``VmHWM``, read every ``poll_s`` while it runs;
    None when it could not be read (no ``/proc``, or a child that ended
    before the first reading). ``ru_maxrss`` from ``wait4`` would not do:
    Linux carries it over ``execve``, so a child started by a process holding
    gigabytes (this one, after loading TensorFlow) reports at least the
    parent's size.
    """
    peak = None
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        while True:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                break
            hwm = _high_water_mb(child.pid)
            if hwm:
                peak = hwm if peak is None else max(peak, hwm)
            time.sleep(poll_s)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    name = f"{Path(command[1]).name} {' '.join(command[2:])}"
    if child.returncode:
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{name} failed (exit {child.returncode}): {tail[0]}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{name} printed no JSON line")
    return json.loads(lines[-1]), None if peak is None else round(peak, 1)


def _keras_command(model_name: str, split: int, mode: str, steps: int, warmup: int,
                   precision: str = "float32") -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", model_name, str(split), mode,
            str(steps), str(warmup), precision]


def _torch_command(python: str, reference: str, model_name: str, split: int, mode: str,
                   steps: int, precision: str = "float32", warmup: int | None = None) -> list[str]:
    """The reference's command line; ``precision`` is the Keras policy of the row it pairs with."""
    return [python, reference, "--model", model_name, "--split", str(split), "--mode", mode,
            "--steps", str(steps), *(["--warmup", str(warmup)] if warmup is not None else []),
            "--precision", TORCH_PRECISION[precision]]


def measure(rows, modes, repeats: int = 3, torch_python: str | None = None,
            reference: str | None = None, csa_steps: int = 20, vrn_steps: int = 2,
            log=print, on_row=None, precisions=("float32",), isas=("native",)) -> list[dict]:
    """Every (row, ISA, precision, mode): Keras and, when given, the reference, alternating ``repeats`` times.

    Both sides run 3 (CSA) or 1 (VRN) untimed steps, then the same number of
    timed ones: Keras's first step traces the graph, the reference's first
    creates its oneDNN kernels. The reference is ``reference``, by default
    :data:`DEFAULT_REFERENCE`, run by ``torch_python``. Each
    Keras policy in ``precisions`` pairs with the reference's counterpart
    (:data:`TORCH_PRECISION`). ``on_row`` is called with the rows so far
    after each one (to save them as they come). ``isas`` are ``native`` (the
    CPU as it is) and names of :data:`ISA_CAPS`; a capped row runs both sides
    under the cap, and in float32 only (bfloat16 below AVX-512 BF16 is
    emulated, no row anyone would train in).
    """
    if torch_python and reference is None:
        reference = str(DEFAULT_REFERENCE)
    results = []
    combos = [(r, i, p, m) for r in rows for i in isas for p in precisions for m in modes
              if i == "native" or p == "float32"]
    for row, isa, precision, mode in combos:
        env = {**os.environ, **ISA_CAPS.get(isa, {})}
        isa_label = isa_name(isa)
        model_name, split = ROWS[row]
        steps = csa_steps if model_name == "csa" else vrn_steps
        warmup = 3 if model_name == "csa" else 1
        keras_ips, torch_ips, ratios, keras_rss, torch_rss = [], [], [], [], []
        for repeat in range(repeats):
            line, rss = run_measured(_keras_command(model_name, split, mode, steps, warmup, precision), env=env)
            keras_ips.append(line["images_per_s"])
            keras_rss.append(rss)
            params = line["params"]
            message = (f"{row} {mode} {precision} {isa_label} run {repeat + 1}/{repeats}: "
                       f"keras {line['images_per_s']:.2f} img/s")
            if torch_python:
                ref, rss = run_measured(_torch_command(torch_python, reference, model_name, split,
                                                       mode, steps, precision, warmup), env=env)
                if ref.get("params", params) != params:
                    raise RuntimeError(f"{Path(reference).name}: {ref['params']:,} trainable parameters "
                                       f"for {row}, Keras has {params:,}: not the same model")
                torch_ips.append(ref["images_per_s"])
                torch_rss.append(rss)
                ratios.append(keras_ips[-1] / torch_ips[-1])
                message += f", reference {ref['images_per_s']:.2f} img/s, ratio {ratios[-1]:.2f}"
            log(message)
        result = {"row": row, "label": ROW_LABELS[row], "model": model_name, "split": split,
                  "mode": mode, "precision": precision, "isa": isa_label, "onednn": line.get("onednn"),
                  "batch": BATCH[model_name], "params": params,
                  "runs": repeats, "steps": steps, "keras_images_per_s": keras_ips,
                  "keras_median": statistics.median(keras_ips),
                  "keras_peak_rss_mb": _largest(keras_rss)}
        if torch_python:
            result.update({"reference_images_per_s": torch_ips,
                           "reference_median": statistics.median(torch_ips),
                           "ratio_per_pair": [round(r, 3) for r in ratios],
                           "median_ratio": round(statistics.median(ratios), 3),
                           "reference_peak_rss_mb": _largest(torch_rss)})
        results.append(result)
        if on_row is not None:
            on_row(results)
    return results


def _largest(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def markdown(results: list[dict]) -> str:
    """The table of :func:`measure`'s rows (rows saved before precisions were recorded are float32).

    With a reference, the peak memory ratio follows the speed ratio; rows
    with ``keras_gflops`` (``peak.annotate``) end with the achieved rate and
    its fraction of the machine's peak in the row's precision.
    """
    has_ref = any("median_ratio" in r for r in results)
    has_peak = any("keras_gflops" in r for r in results)
    head = "| model | mode | batch | precision | ISA | Keras img/s | Keras peak RSS MB |"
    rule = "|---|---|---|---|---|---|---|"
    if has_ref:
        head += " reference img/s | reference peak RSS MB | ratio (median of pairs) | RSS Keras / reference |"
        rule += "---|---|---|---|"
    if has_peak:
        head += " Keras GFLOP/s | of peak |" + (" reference GFLOP/s | of peak |" if has_ref else "")
        rule += "---|---|" + ("---|---|" if has_ref else "")
    lines = [head, rule]
    for r in results:
        line = (f"| {r['label']} | {r['mode']} | {r['batch']} | {r.get('precision', 'float32')} | "
                f"{r.get('isa', 'native')} | "
                f"{r['keras_median']:.2f} | "
                f"{_mb(r['keras_peak_rss_mb'])} |")
        if has_ref:
            line += (f" {r['reference_median']:.2f} | {_mb(r['reference_peak_rss_mb'])} | "
                     f"{r['median_ratio']:.2f}x | {_ratio(r['keras_peak_rss_mb'], r['reference_peak_rss_mb'])} |")
        if has_peak:
            line += f" {_rate(r, 'keras')} |"
            if has_ref:
                line += f" {_rate(r, 'reference')} |"
        lines.append(line)
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def _rate(row: dict, side: str) -> str:
    """``GFLOP/s | fraction of peak`` of one side of a row, ``n/a`` where not measured."""
    gflops, fraction = row.get(f"{side}_gflops"), row.get(f"{side}_fraction_of_peak")
    if gflops is None:
        return "n/a | n/a"
    return f"{gflops:.0f} | " + ("n/a" if fraction is None else f"{100 * fraction:.0f}%")


def native_isa(flags: set[str] | None = None) -> str:
    """The widest of :data:`ISA_RANK` this CPU runs: ``amx``, ``avx512``, ``avx2`` or ``sse41``."""
    from csa_keras.utils.cpu import cpu_flags

    flags = cpu_flags() if flags is None else flags
    if "amx_tile" in flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "sse41"


def isa_name(isa: str) -> str:
    """How a row's instruction set reads in the report: ``avx2 (native)``, ``avx2 (capped)``."""
    return f"{native_isa()} (native)" if isa == "native" else f"{isa} (capped)"


def default_isas(flags: set[str] | None = None) -> list[str]:
    """The CPU as it is, and capped to AVX2 where it has more (the CPUs most people have)."""
    native = native_isa(flags)
    return ["native"] + (["avx2"] if ISA_RANK.index(native) > ISA_RANK.index("avx2") else [])


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
"""The CPU features that decide the kernels TensorFlow and PyTorch run, reported with every table."""


def machine() -> dict:
    """What the figures were measured on: CPU model and its relevant flags, cores, library versions,
    and the kernels the project chooses for TensorFlow on this CPU."""
    importlib.import_module("csa_keras")
    import keras
    import tensorflow as tf

    from csa_keras.utils.cpu import cpu_flags, onednn_choice

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    present = cpu_flags()
    return {"cpu": cpu, "cpu_flags": [f for f in CPU_FLAGS if f in present], "cores": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "native_isa": native_isa(present),
            "tensorflow_kernels": onednn_choice(present)[1],
            "date": time.strftime("%Y-%m-%d %H:%M")}


def torch_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"error: {python} cannot import torch (pip install -e .[bench] installs it)")
    return out.stdout.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS),
                        help="models to measure (default: all)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating Keras/reference runs per row (default: 3)")
    parser.add_argument("--csa-steps", type=int, default=20, help="timed steps per CSA run (default: 20)")
    parser.add_argument("--vrn-steps", type=int, default=2, help="timed steps per VRN run (default: 2)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS,
                        help="Keras dtype policies to measure each row under; the reference runs "
                             "bfloat16 autocast against mixed_bfloat16 (default: float32, and "
                             "mixed_bfloat16 too on a CPU with AVX-512 BF16 or AMX)")
    parser.add_argument("--isa", nargs="+", choices=["native", *ISA_CAPS],
                        help="instruction sets to measure each row with: native (the CPU as it is) and "
                             "capped ones (float32 rows only) (default: native, and avx2 too on a CPU with "
                             "AVX-512 or AMX)")
    parser.add_argument("--torch-python", help="a Python that has torch: also run the PyTorch reference")
    parser.add_argument("--reference", help="the reference script, run by --torch-python "
                                            "(default: torch_reference.py beside this script)")


def default_precisions() -> list[str]:
    """float32, and mixed_bfloat16 where the CPU computes in bfloat16 (not emulated in software)."""
    from csa_keras.utils.cpu import has_bfloat16

    return ["float32"] + (["mixed_bfloat16"] if has_bfloat16() else [])


def check_arguments(parser: argparse.ArgumentParser, args) -> str | None:
    """Validate the reference options; return torch's version when the reference will run.

    ``--torch-python`` alone runs :data:`DEFAULT_REFERENCE` (``args.reference`` is set to it).
    """
    if args.repeats < 1 or args.csa_steps < 1 or args.vrn_steps < 1:
        parser.error("--repeats, --csa-steps and --vrn-steps must be at least 1")
    args.precision = list(dict.fromkeys(args.precision or default_precisions()))
    args.isa = list(dict.fromkeys(args.isa or default_isas()))
    if args.reference and not args.torch_python:
        parser.error("--reference needs --torch-python, the Python that runs it")
    if args.torch_python and not args.reference:
        args.reference = str(DEFAULT_REFERENCE)
    if args.reference and not Path(args.reference).is_file():
        parser.error(f"--reference: no such file: {args.reference}")
    return torch_version(args.torch_python) if args.torch_python else None


def public_settings(args: argparse.Namespace, drop: tuple[str, ...] = ("json_out",)) -> dict:
    """The settings as recorded, without a machine's paths: the torch Python as ``TORCH_PYTHON``,
    the reference by file name (the project's own as its path in the repository)."""
    settings = {k: v for k, v in vars(args).items() if k not in drop}
    if args.torch_python:
        own = Path(args.reference).resolve() == DEFAULT_REFERENCE
        settings.update(torch_python="TORCH_PYTHON",
                        reference="benchmarks/torch_reference.py" if own else Path(args.reference).name)
    return settings


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, split, mode, steps, warmup, precision = sys.argv[2:8]
        print(json.dumps(keras_row(name, int(split), mode, int(steps), int(warmup), precision)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json-out", help="also write the machine, settings and rows as JSON")
    args = parser.parse_args(argv)
    torch = check_arguments(parser, args)
    results = measure(args.rows, args.modes, args.repeats, args.torch_python, args.reference,
                      args.csa_steps, args.vrn_steps, log=lambda m: print(m, file=sys.stderr, flush=True),
                      precisions=args.precision, isas=args.isa)
    print(markdown(results))
    if args.json_out:
        info = {"machine": {**machine(), "torch": torch}, "settings": public_settings(args),
                "rows": results}
        Path(args.json_out).write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
