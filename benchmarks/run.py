"""Every performance figure in one command: a Markdown report and a JSON file.

Sections, cheapest first, each written to ``--output`` as soon as it is done
(a run stopped part-way keeps what it measured):

1. the machine's matrix-product peak (``peak.py``), float32 and bfloat16;
2. input pipelines (``input_pipeline.py``): images/s of the training
   ``tf.data`` pipelines alone;
3. training end to end (``end_to_end.py``): the Voting ResNet baseline
   through the training function with its input pipeline and augmentation,
   against the same model stepping on a batch in memory, alternated;
   the crop-and-mirror layer (``crop_layer.py``): one gather against ten
   slices and a stack;
4. face preprocessing (``face_detection.py``, in a process of its own that
   has not loaded TensorFlow, as in ``python -m csa_keras.data``, so its
   workers can fork): Viola-Jones on 640x480 photographs in one process, on
   all cores, and served from the cache;
5. prediction end to end (``predict_pipeline.py``): photographs and a
   video through decode, detect, crop, classify and record, with the
   levers (overlap, ``--min-face 48``) and the faces they find;
6. serving (``serve.py``): answers per second of ``python -m csa_keras.serve``
   to one and to four concurrent clients on the loopback interface, with
   latencies (given the ``serve`` extra);
7. start-up (``startup.py``): seconds and peak memory of importing
   TensorFlow, Keras and the project's training modules, of one photograph
   through the predict command and through ``Predictor.pretrained()``, and
   (given torch) of importing torch;
8. models (``throughput.py``): training and inference images/s and peak
   resident memory of the CSA (batch 32) and the Voting ResNet at every split
   (batch 135), and, given a Python with torch (``--torch-python``), the same
   rows of the PyTorch reference (``torch_reference.py``) measured
   alternately and the median ratio; ``--precision`` adds rows under
   ``mixed_bfloat16``; each row's GFLOP/s and its fraction of the peak of
   its precision (``peak.annotate``).

    python benchmarks/run.py --output benchmarks/results \\
        [--torch-python PY [--reference SCRIPT]] [--precision float32 mixed_bfloat16] [--repeats 3] [--quick]

``--quick`` runs every section at toy sizes (one repeat, CSA and VRN split 3
only) to check the command end to end in a few minutes; its figures are not
ones to quote.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import crop_layer
import end_to_end
import face_detection
import input_pipeline
import peak
import predict_pipeline
import serve
import startup
import throughput


def _write(output: Path, report: dict) -> None:
    """Write ``performance.json`` and ``performance.md`` atomically (temporary name, then rename)."""
    output.mkdir(parents=True, exist_ok=True)
    texts = {"performance.json": json.dumps(report, indent=2) + "\n",
             "performance.md": render(report)}
    for name, text in texts.items():
        tmp = output / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, output / name)


def render(report: dict) -> str:
    m = report["machine"]
    flags = f" (flags: {', '.join(m['cpu_flags'])})" if m.get("cpu_flags") else ""
    lines = ["# Performance", "",
             f"Measured {m['date']} on {m['cpu']}{flags}, {m['cores']} cores; Python {m['python']}, "
             f"TensorFlow {m['tensorflow']}, Keras {m['keras']}"
             + (f", PyTorch {m['torch']} (reference)" if m.get("torch") else "") + ".",
             *(["", f"Native instruction set: {m['native_isa']}; TensorFlow's kernels: {m['tensorflow_kernels']}."]
               if m.get("native_isa") else []),
             "", f"Command: `{report['command']}`", ""]
    sections = report["sections"]
    if "peak" in sections:
        lines += ["## Matrix-product peak", "",
                  "Square matrix products, the median of each size's runs, the best size; the peak of a "
                  "precision is the larger of the libraries'.", "", peak.markdown(sections["peak"]), ""]
    if "models" in sections:
        s = sections["models"]
        lines += ["## Models", "",
                  f"Images per second, median of {s['repeats']} runs per row; Keras and the reference "
                  "alternate (A B A B ...) and the ratio is the median of the per-pair ratios. "
                  "Peak RSS: the largest resident memory of one run's process. GFLOP/s: 6 (training) or 2 "
                  "(inference) operations per multiply-accumulate of the convolutions and Dense layers "
                  "per image, times images/s; of peak: against the matrix-product peak of the row's "
                  "precision.", "",
                  throughput.markdown(s["rows"]), ""]
    if "input_pipeline" in sections:
        lines += ["## Input pipelines", "", input_pipeline.markdown(sections["input_pipeline"]), ""]
    if "end_to_end" in sections:
        lines += ["## Training end to end", "", "The Voting ResNet baseline trained by `fit_model` "
                  "(pipeline, augmentation, the `converge` recipe) against the same model on a batch in "
                  "memory, in one process, alternated; median images/s of the epochs after the first.",
                  "", end_to_end.markdown(sections["end_to_end"]), ""]
    if "crop_layer" in sections:
        lines += ["## Crop-and-mirror layer", "", crop_layer.markdown(sections["crop_layer"]), ""]
    if "predict" in sections:
        s = sections["predict"]
        lines += ["## Prediction end to end", "",
                  f"{s['photos']} 640x480 photographs (one face each) and a {s['video_frames']}-frame "
                  f"640x480 video; median of {s['repeats']} runs; model loaded and warm"
                  + (f". Start-up of `python -m csa_keras.predict` on one photograph: {s['startup_s']:.2f} s."
                     if "startup_s" in s else "; start-up: its own section."), "",
                  predict_pipeline.markdown(s), ""]
    if "serve" in sections:
        s = sections["serve"]
        lines += ["## Serving", "",
                  f"`python -m csa_keras.serve` with `{s.get('model', 'the default model')}` "
                  f"(up in {s['startup_s']:.1f} s), one "
                  f"640x480 photograph with one face per request, each client waiting for its answer; "
                  f"at most {s['requests']} answers or {s['seconds_bound']:g} s a row, median of "
                  f"{s['repeats']} rounds, the rows alternated.", "", serve.markdown(s), ""]
    if "startup" in sections:
        s = sections["startup"]
        lines += ["## Start-up", "",
                  f"Fresh processes, wall seconds from start to exit and peak resident memory, median of "
                  f"{s['repeats']} runs, the rows alternated.", "", startup.markdown(s), ""]
    if "face_detection" in sections:
        s = sections["face_detection"]
        lines += ["## Face preprocessing", "",
                  f"{s['frames']} synthetic 640x480 photographs, a face found in {s['faces_found']}; "
                  f"median of {s['repeats']} runs; parallel and single-process faces identical: "
                  f"{s['identical_faces']}.", "", face_detection.markdown(s), ""]
    return "\n".join(lines)


def _public(args: argparse.Namespace) -> tuple[str, dict]:
    """The command line and settings as recorded: the torch Python as a name, the reference by file
    name (the project's own as its path in the repository), no machine's paths."""
    settings = throughput.public_settings(args, drop=("output",))
    shown = os.path.relpath(args.output)
    words = ["python benchmarks/run.py", "--output",
             Path(args.output).name if shown.startswith("..") else shown]
    if args.torch_python:
        words += ["--torch-python", "TORCH_PYTHON", "--reference", settings["reference"]]
    for flag in ("rows", "modes", "precision", "isa"):
        words += [f"--{flag}", *settings[flag]]
    for flag in ("repeats", "csa_steps", "vrn_steps", "frames"):
        words += [f"--{flag.replace('_', '-')}", str(settings[flag])]
    return " ".join(words) + (" --quick" if args.quick else ""), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="folder for performance.md and performance.json")
    throughput.add_arguments(parser)
    parser.add_argument("--frames", type=int, default=200, help="photographs for face preprocessing")
    parser.add_argument("--quick", action="store_true", help="toy sizes, to check the command runs")
    args = parser.parse_args()
    torch = throughput.check_arguments(parser, args)
    if args.quick:
        args.rows, args.repeats, args.csa_steps, args.vrn_steps, args.frames = ["csa", "vrn3"], 1, 3, 1, 10
    output = Path(args.output)
    command, settings = _public(args)
    report = {"machine": {**throughput.machine(), "torch": torch}, "command": command,
              "settings": settings, "sections": {}}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log("matrix-product peak ...")
    report["sections"]["peak"] = peak.measure(repeats=2 if args.quick else 5, torch_python=args.torch_python)
    _write(output, report)
    log("input pipelines ...")
    report["sections"]["input_pipeline"] = input_pipeline.run(
        1350 if args.quick else 2700, 1 if args.quick else 3)
    _write(output, report)
    log("training end to end ...")
    report["sections"]["end_to_end"] = end_to_end.measure(
        images=128 if args.quick else 640, epochs=2 if args.quick else 3,
        batch=32 if args.quick else 64, log=log)
    _write(output, report)
    log("crop-and-mirror layer ...")
    report["sections"]["crop_layer"] = crop_layer.run(repeats=2 if args.quick else 7)
    _write(output, report)
    log("face preprocessing ...")
    faces, _ = throughput.run_measured([sys.executable, face_detection.__file__, "--frames",
                                        str(args.frames), "--repeats", str(args.repeats), "--json"])
    report["sections"]["face_detection"] = faces
    _write(output, report)
    log("prediction end to end ...")
    predicted, _ = throughput.run_measured(
        [sys.executable, predict_pipeline.__file__, "--photos", "20" if args.quick else "100",
         "--video-frames", "20" if args.quick else "150", "--repeats", str(args.repeats), "--json"])
    report["sections"]["predict"] = predicted
    _write(output, report)
    try:
        import fastapi  # noqa: F401
    except ImportError:
        log("serving: skipped (the serve extra is not installed)")
    else:
        log("serving ...")
        report["sections"]["serve"] = serve.measure(requests=20 if args.quick else 100,
                                                    seconds=15 if args.quick else 60,
                                                    repeats=1 if args.quick else args.repeats, log=log)
        _write(output, report)
    log("start-up ...")
    report["sections"]["startup"] = startup.measure(2 if args.quick else 5, args.torch_python, log=log)
    _write(output, report)
    log("models ...")

    def save_rows(rows: list[dict]) -> None:
        report["sections"]["models"] = {"repeats": args.repeats,
                                        "rows": peak.annotate(rows, report["sections"]["peak"])}
        _write(output, report)

    throughput.measure(args.rows, args.modes, args.repeats, args.torch_python, args.reference,
                       args.csa_steps, args.vrn_steps, log=log, on_row=save_rows, precisions=args.precision,
                       isas=args.isa)
    print(render(report))


if __name__ == "__main__":
    main()
