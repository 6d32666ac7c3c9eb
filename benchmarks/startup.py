"""The cost of starting: what a user waits for before the first label, and what the imports hold in memory.

Every row is a fresh Python process, timed from its start to its exit by this
script (wall seconds) with its peak resident memory (``VmHWM``, as in
``throughput.py``); medians over ``--repeats`` runs:

``import tensorflow``
    TensorFlow alone: the floor under everything the project does.
``import tensorflow + keras``
    and Keras, what any Keras program pays.
``import the training modules``
    the project's training code of both tasks (``csa_keras.csa.training``,
    ``voting_resnet.training``), what a training run imports before its first
    step; its memory against the one above is the project's share of a
    training row's peak.
``predict command``
    ``python -m csa_keras.predict PHOTO --quiet`` on one 640x480 photograph
    with one face: import, model load, face search, classification, record.
``predict command, light install (LiteRT)``
    the same command in an environment holding only the package's own
    dependencies, without TensorFlow (:mod:`light_install`): the model's
    TFLite artifact on LiteRT. The result's ``install_mb`` gives what that
    install weighs on disk, and the one with the ``train`` extra.
``Predictor.pretrained() from Python``
    the same through the Python API; the child also reports the seconds of
    its three phases: the import of :mod:`csa_keras.inference.predictor`, loading the
    pretrained model, and the first photograph.
``import torch`` (given ``--torch-python``)
    PyTorch's own import, for the memory of the reference's rows.

    python benchmarks/startup.py [--repeats 5] [--torch-python PY] [--rows TEXT ...] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import light_install
import throughput

TIMED = """
import json, time
start = time.perf_counter()
{body}
print(json.dumps({{"in_process_s": round(time.perf_counter() - start, 3){extra}}}))
"""

ROWS = {
    "import tensorflow": ("import tensorflow", ""),
    "import tensorflow + keras": ("import tensorflow, keras", ""),
    "import the training modules": (
        "import csa_keras.csa.training, voting_resnet.training", ""),
    "Predictor.pretrained() from Python": (
        "from csa_keras.inference.predictor import Predictor\n"
        "imported = time.perf_counter()\n"
        "predictor = Predictor.pretrained()\n"
        "loaded = time.perf_counter()\n"
        "records = list(predictor.predict_paths([PHOTO], progress=False))\n"
        "done = time.perf_counter()\n"
        "assert records and records[0]['label'], records",
        ', "import_s": round(imported - start, 3), "load_s": round(loaded - imported, 3), '
        '"first_photo_s": round(done - loaded, 3)'),
}
"""Each row's Python code, and the extra JSON fields it reports."""
PHASES = ("import_s", "load_s", "first_photo_s")


def photo(folder: Path) -> Path:
    """One 640x480 JPEG photograph with one face (``face_detection.make_frames``, as the pipeline's)."""
    import face_detection

    return Path(face_detection.make_frames(folder, 1, seed=3)[0].source)


def _run(command: list[str]) -> tuple[float, dict, float | None]:
    """Wall seconds from start to exit, the JSON line, the peak resident memory in MB."""
    start = time.perf_counter()
    line, rss = throughput.run_measured(command)
    return time.perf_counter() - start, line, rss


LIGHT_ROW = "predict command, light install (LiteRT)"


def install_mb() -> dict:
    """What the light install and the one with the ``train`` extra weigh on disk, in MB."""
    return {name: round(light_install.installed_bytes(light_install.light_entries(extra)) / 1e6, 1)
            for name, extra in (("light", None), ("train", "train"))}


def measure(repeats: int = 5, torch_python: str | None = None, log=print, rows: list[str] | None = None) -> dict:
    """Every row ``repeats`` times, alternating the rows (A B C ... A B C ...) so load hits all;
    ``rows``: only the rows whose name holds one of these texts."""
    with tempfile.TemporaryDirectory() as tmp:
        image = photo(Path(tmp))
        commands = {name: [sys.executable, "-c", TIMED.format(body=body.replace("PHOTO", repr(str(image))),
                                                              extra=extra)]
                    for name, (body, extra) in ROWS.items()}
        commands["predict command"] = [sys.executable, "-m", "csa_keras.predict", str(image), "--quiet"]
        light = light_install.light_environment(Path(tmp) / "light")
        commands[LIGHT_ROW] = [str(light), "-m", "csa_keras.predict", str(image), "--quiet"]
        if torch_python:
            commands["import torch"] = [torch_python, "-c", TIMED.format(body="import torch", extra="")]
        if rows:
            commands = {name: command for name, command in commands.items() if any(r in name for r in rows)}
        runs: dict[str, list] = {name: [] for name in commands}
        for repeat in range(repeats):
            for name, command in commands.items():
                wall, line, rss = _run(command)
                runs[name].append((wall, line, rss))
                log(f"{name} run {repeat + 1}/{repeats}: {wall:.2f} s, {rss} MB")
    table = []
    for name, results in runs.items():
        row = {"row": name, "wall_s": [round(r[0], 3) for r in results],
               "median_wall_s": round(statistics.median(r[0] for r in results), 3),
               "peak_rss_mb": max((r[2] for r in results if r[2] is not None), default=None)}
        for phase in PHASES:
            values = [r[1][phase] for r in results if phase in r[1]]
            if values:
                row[f"median_{phase}"] = round(statistics.median(values), 3)
        table.append(row)
    return {"repeats": repeats, "rows": table, "install_mb": install_mb(), "load_average": _load_average()}


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages when the measurement ended (busy cores slow every row)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def markdown(result: dict) -> str:
    lines = ["| start-up | wall s (median) | peak RSS MB | phases (median s) |", "|---|---:|---:|---|"]
    for r in result["rows"]:
        phases = ", ".join(f"{p[:-2].replace('_', ' ')} {r['median_' + p]:.2f}" for p in PHASES
                           if f"median_{p}" in r)
        rss = "n/a" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        lines.append(f"| {r['row']} | {r['median_wall_s']:.2f} | {rss} | {phases} |")
    if result.get("install_mb"):
        sizes = result["install_mb"]
        lines.append(f"\nInstalled size: {sizes['light']:.0f} MB light (LiteRT), {sizes['train']:.0f} MB with "
                     "the train extra (TensorFlow, Keras).")
    if result.get("load_average"):
        lines.append(f"Load average at the end: {', '.join(f'{v:.2f}' for v in result['load_average'])}.")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each row (default: 5)")
    parser.add_argument("--torch-python", help="a Python that has torch: also time `import torch`")
    parser.add_argument("--rows", nargs="+", metavar="TEXT",
                        help="only the rows whose name holds one of these texts (default: every row)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = measure(args.repeats, args.torch_python, log=lambda m: print(m, file=sys.stderr, flush=True),
                     rows=args.rows)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
