"""Prediction end to end: decode, detect, crop, classify and record, on photographs and a video.

What ``python -m csa_keras.predict`` does with a folder of photographs or a
video file, timed in one process once the model is loaded and warm:
:meth:`csa_keras.inference.Predictor.predict_paths` consumed to the last
record. The inputs are built here, so no dataset is needed: ``--photos``
640x480 JPEG photographs (``face_detection.make_frames``: the photograph
matplotlib ships, pasted at random scales, positions and brightness, one face
each) and a 640x480 MJPG video of ``--video-frames`` frames at 25 frames/s
(the same photograph gliding across a grey background).

Models: by default the two models in the box, the CSA (``csa``, short for
``csa_fer2013``) and the Voting ResNet (``vrn_fer2013``, the package's
default model); also a Voting ResNet baseline with random weights (``vrn``:
48x48 RGB, its speed is its architecture's, not its training's).

Runtimes (``--runtimes``): ``keras`` (the ``.keras`` model on TensorFlow)
and ``litert`` (the model's TFLite artifact on LiteRT,
``Predictor(..., runtime="litert")``), both by default where
``ai-edge-litert`` is importable, ``keras`` alone otherwise. ``litert`` runs
for the models that ship an artifact (both models in the box do); the VRN
baseline with random weights has none and runs on Keras only. Each variant
runs once per runtime.

Variants, alternated ``--repeats`` times per input with the runtimes
(every variant on every runtime within each repeat, so all are measured
under the same load; medians):

``in turn``
    decoding and detection in turn with the model, faces from the cascade's
    own 24-pixel window up: the default path.
``overlapped``
    a thread decodes and searches up to 64 images ahead while the model
    classifies (``Predictor(prefetch=64)``).
``overlapped, min_face 48``
    and faces of at least 48 pixels only (``--min-face 48``): the search runs
    on a copy reduced by half and the boxes are scaled back.

Each row's records are compared with those of ``in turn`` on Keras on the
same input: the faces found per image (same count), the overlap (IoU) of
their boxes, and the labels; a LiteRT row also gives its faces per second
over the Keras row of its variant (``faces_per_s_vs_keras``). The model
alone: one call on the faces of the reference's photographs (one batch),
alternated between the runtimes ``MODEL_CALLS`` times (medians), the
classification's share of the path without decoding or detection.

The label's stability, the control for the labels of other boxes: each
face of the reference is cropped again with its box moved ``JITTER_PX``
pixels in each of the 8 directions (right, left, up, down and the
diagonals) and classified; a face is stable when all 8 keep its label.
The command's start-up is ``startup.py``'s.

    python benchmarks/predict_pipeline.py [--photos 100] [--video-frames 150] [--repeats 3]
        [--models csa vrn_fer2013] [--runtimes keras litert] [--json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import face_detection
import matplotlib
import numpy as np
from PIL import Image

VARIANTS = {"in turn": {"min_size": 24, "prefetch": 0},
            "overlapped": {"min_size": 24, "prefetch": 64},
            "overlapped, min_face 48": {"min_size": 48, "prefetch": 64}}
"""Predictor options of each variant; the others are the defaults."""
REFERENCE_VARIANT = "in turn"
"""The variant the others' faces are compared with: the default path, without either lever."""
REFERENCE_RUNTIME = "keras"
"""The runtime of the reference: the Keras path the project trains and checks against."""
MODELS = ("csa", "vrn_fer2013")
"""The models measured by default: the two in the box."""
RUNTIMES = ("keras", "litert")
"""What runs the model: the ``.keras`` model on TensorFlow, or its TFLite artifact on LiteRT."""
JITTER_PX = 3
"""The shift of the control that says how much a few pixels change the labels by themselves."""
SHIFTS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0))
"""The 8 directions a box is moved in, in units of ``JITTER_PX``."""
MODEL_CALLS = 10
"""Model calls per runtime of the model-alone measurement (medians)."""


def make_video(path: Path, frames: int, fps: float = 25.0) -> Path:
    """A 640x480 MJPG video of ``frames`` frames: the photograph gliding left to right across grey."""
    photo = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
                       .convert("RGB"))
    small = cv2.resize(photo, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV {cv2.__version__} cannot write an MJPG video")
    for i in range(frames):
        canvas = np.full((480, 640, 3), 120, dtype=np.uint8)
        x = int((640 - w) * i / max(1, frames - 1))
        y = (480 - h) // 2
        canvas[y:y + h, x:x + w] = small
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter)


def compare(reference: list[dict], records: list[dict]) -> dict:
    """How ``records`` differ from ``reference`` (the same inputs): faces per image, box IoU, labels."""
    def by_image(rs):
        found: dict[tuple, list[dict]] = {}
        for r in rs:
            found.setdefault((r["source"], r["frame"]), []).extend([r] if r["status"] == "ok" else [])
        return found

    ref, new = by_image(reference), by_image(records)
    same_count = sum(len(ref[k]) == len(new.get(k, [])) for k in ref)
    ious, same_label = [], 0
    for key, faces in ref.items():
        for face in faces:
            best = max(new.get(key, []), key=lambda r: _iou(face["box"], r["box"]), default=None)
            if best is None:
                continue
            ious.append(_iou(face["box"], best["box"]))
            same_label += best["label"] == face["label"]
    return {"images": len(ref), "same_face_count": same_count,
            "faces_reference": sum(len(v) for v in ref.values()),
            "faces": sum(len(v) for v in new.values()),
            "median_iou": round(float(np.median(ious)), 3) if ious else None,
            "min_iou": round(float(np.min(ious)), 3) if ious else None,
            "same_label": same_label}


def default_runtimes() -> list[str]:
    """``keras`` and ``litert`` where the LiteRT interpreter can be imported, ``keras`` alone otherwise."""
    return list(RUNTIMES) if importlib.util.find_spec("ai_edge_litert") is not None else ["keras"]


def _box_name(model_name: str) -> str:
    """The model in the box a ``--models`` entry names: ``csa`` is the pretrained CSA."""
    from csa_keras.inference.loading import CSA_MODEL

    return CSA_MODEL if model_name == "csa" else model_name


def model_runtimes(model_name: str, runtimes) -> list[str]:
    """The runtimes of ``runtimes`` that can run ``model_name``: ``litert`` needs the TFLite artifact
    a model in the box ships (the random VRN baseline has none)."""
    from csa_keras.inference.litert import pretrained_artifacts
    shipped = pretrained_artifacts()
    has_artifact = model_name != "vrn" and _box_name(model_name) in shipped
    return [r for r in runtimes if r != "litert" or has_artifact]


def _predictors(model_name: str, variants, runtimes=("keras",)) -> dict:
    """One predictor per variant and runtime, keyed ``(variant, runtime)``, all on one model: the
    pretrained CSA, one random VRN baseline (Keras only), or a model in the box by name."""
    from csa_keras.inference.predictor import Predictor

    keys = [(v, r) for v in variants for r in runtimes]
    if model_name != "vrn":
        return {(v, r): Predictor.pretrained(_box_name(model_name), runtime=r, **VARIANTS[v])
                for v, r in keys}
    from voting_resnet.models import build_voting_resnet

    model = build_voting_resnet(7, input_shape=(48, 48, 3), split_after=0)
    return {(v, "keras"): Predictor(model, **VARIANTS[v]) for v in variants}


def reference_crops(predictor, records: list[dict], shifts=((0, 0),), shift: int = 0):
    """The faces of the photographs' ``ok`` records cropped again, each box moved ``shift`` pixels in
    each of ``shifts`` (units), and their labels. Photographs only (their records name the file)."""
    from csa_keras.data.faces import crop_face, read_image

    crops, labels = [], []
    for record in records:
        if record["status"] != "ok" or record["frame"] is not None:
            continue
        rgb, _ = read_image(record["source"], predictor.settings.max_side)
        x, y, w, h = record["box"]
        for dx, dy in shifts:
            face, _, _ = crop_face(rgb, predictor.settings,
                                   box=(x + dx * shift, y + dy * shift, w, h))
            crops.append(face)
        labels.append(record["label"])
    return crops, labels


def label_stability(predictor, records: list[dict], shift: int = JITTER_PX) -> dict:
    """How often a face keeps its label when its box moves ``shift`` pixels, in each of 8 directions.

    The control for the labels of another detection's boxes: a crop a few
    pixels off changes a classifier's answer on some faces whatever found it.
    ``stable``: faces whose label all 8 shifted boxes keep; ``same_label``:
    faces that keep it with the box moved right and down (the diagonal
    alone, as earlier reports measured). Photographs only (their records name
    the file).
    """
    crops, labels = reference_crops(predictor, records, SHIFTS, shift)
    if not labels:
        return {"faces": 0, "same_label": 0, "stable": 0, "shift_px": shift}
    probabilities = predictor.classify(np.stack(crops))
    names = np.asarray(predictor.class_names)[np.argmax(probabilities, axis=1)]
    kept = names.reshape(len(labels), len(SHIFTS)) == np.asarray(labels)[:, None]
    return {"faces": len(labels), "same_label": int(kept[:, SHIFTS.index((1, 1))].sum()),
            "stable": int(kept.all(axis=1).sum()), "shift_px": shift,
            "directions": len(SHIFTS)}


def model_alone(predictors: dict, crops: list, calls: int = MODEL_CALLS) -> dict:
    """Milliseconds of one model call on ``crops`` (one batch, at most ``batch_size`` faces) per runtime:
    the classification's share of the path, without decoding or detection. Calls alternate between the
    runtimes (``predictors``: one per runtime); medians."""
    batch = np.stack(crops[:min(p.batch_size for p in predictors.values())])
    for predictor in predictors.values():
        predictor.classify(batch)
    times: dict[str, list[float]] = {runtime: [] for runtime in predictors}
    for _ in range(calls):
        for runtime, predictor in predictors.items():
            start = time.perf_counter()
            predictor.classify(batch)
            times[runtime].append(time.perf_counter() - start)
    found = {runtime: {"faces": len(batch), "calls": calls,
                       "ms_per_call": round(1000 * statistics.median(t), 2),
                       "faces_per_s": round(len(batch) / statistics.median(t), 1)}
             for runtime, t in times.items()}
    for runtime, row in found.items():
        if runtime != "keras":
            _versus_keras(row, found.get("keras"))
    return found


def _versus_keras(row: dict, keras: dict | None) -> None:
    """Add ``faces_per_s_vs_keras`` to a non-Keras ``row``: its faces/s over the Keras row's."""
    if keras and keras["faces_per_s"]:
        row["faces_per_s_vs_keras"] = round(row["faces_per_s"] / keras["faces_per_s"], 3)


def run_once(predictor, inputs) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    records = list(predictor.predict_paths(inputs, progress=False))
    return time.perf_counter() - start, records


def _row(model_name: str, input_name: str, key: tuple, n_images: int, times: list[float],
         records: list[dict], reference: list[dict]) -> dict:
    variant, runtime = key
    seconds = statistics.median(times)
    faces = sum(r["status"] == "ok" for r in records)
    return {"model": model_name, "input": input_name, "variant": variant, "runtime": runtime,
            "images": n_images, "faces": faces, "seconds": round(seconds, 3),
            "faces_per_s": round(faces / seconds, 1), "images_per_s": round(n_images / seconds, 1),
            "ms_per_image": round(1000 * seconds / n_images, 2),
            "against_default": compare(reference, records)}


def measure(photos: int = 100, video_frames: int = 150, repeats: int = 3, models=MODELS,
            variants=tuple(VARIANTS), runtimes=None, log=print) -> dict:
    """Every model's variants on every runtime it can run, alternated ``repeats`` times per input.

    ``runtimes``: a subset of :data:`RUNTIMES`; ``None`` for :func:`default_runtimes`.
    """
    rows, controls, models_alone = [], [], []
    variants = list(variants)
    runtimes = default_runtimes() if runtimes is None else list(runtimes)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        face_detection.make_frames(folder, photos)
        video = make_video(Path(tmp) / "video.avi", video_frames)
        inputs = {"photos": ([folder], photos), "video": ([video], video_frames)}
        log(f"{photos} photographs and a {video_frames}-frame video, 640x480; {os.cpu_count()} cores "
            f"(load average {os.getloadavg()[0]:.1f}); OpenCV {cv2.__version__}; median of {repeats} runs; "
            f"runtimes {', '.join(runtimes)}")
        for model_name in models:
            usable = model_runtimes(model_name, runtimes)
            if not usable:
                log(f"{model_name}: skipped (no TFLite artifact for {', '.join(runtimes)})")
                continue
            predictors = _predictors(model_name, variants, usable)
            for predictor in predictors.values():
                run_once(predictor, [next(folder.iterdir())])
            for input_name, (paths, n_images) in inputs.items():
                times: dict[tuple, list[float]] = {key: [] for key in predictors}
                records: dict[tuple, list[dict]] = {}
                for _ in range(repeats):
                    for key, predictor in predictors.items():
                        seconds, records[key] = run_once(predictor, paths)
                        times[key].append(seconds)
                reference_key = (REFERENCE_VARIANT, REFERENCE_RUNTIME)
                reference = records.get(reference_key, next(iter(records.values())))
                if input_name == "photos":
                    first = next(iter(predictors))
                    control = label_stability(predictors[first], reference)
                    controls.append({"model": model_name, "runtime": first[1], **control})
                    alone = {r: p for (v, r), p in predictors.items() if v == first[0]}
                    crops, _ = reference_crops(predictors[first], reference)
                    if crops:
                        classify = model_alone(alone, crops)
                        models_alone.extend({"model": model_name, "runtime": r, **m} for r, m in classify.items())
                        log(f"{model_name} model alone: " + ", ".join(
                            f"{r} {m['ms_per_call']} ms per call of {m['faces']} faces" for r, m in classify.items()))
                    log(f"{model_name} stability: the reference boxes moved {JITTER_PX} px keep their "
                        f"label in all 8 directions on {control['stable']}/{control['faces']} faces, "
                        f"right and down on {control['same_label']}")
                found = {key: _row(model_name, input_name, key, n_images, times[key], records[key], reference)
                         for key in predictors}
                for (variant, runtime), row in found.items():
                    if runtime != "keras":
                        _versus_keras(row, found.get((variant, "keras")))
                    rows.append(row)
                    log(f"{model_name} {input_name:<6} {variant:<24} {runtime:<6} {row['images_per_s']:7.1f} "
                        f"images/s {row['faces_per_s']:7.1f} faces/s  same faces: "
                        f"{row['against_default']['same_face_count']}/{n_images}, median IoU "
                        f"{row['against_default']['median_iou']}, same labels "
                        f"{row['against_default']['same_label']}/{row['against_default']['faces_reference']}")
    return {"photos": photos, "video_frames": video_frames, "repeats": repeats, "runtimes": runtimes,
            "rows": rows, "shift_controls": controls, "model_alone": models_alone}


def _model_name(name: str) -> str:
    return "VRN baseline (random weights)" if name == "vrn" else f"`{_box_name(name)}`"


def markdown(result: dict) -> str:
    lines = ["| model | input | variant | runtime | images/s | faces/s | faces/s over Keras | ms/image | "
             "same faces as in turn on Keras | median box IoU | same label |",
             "|---|---|---|---|---:|---:|---:|---:|---|---:|---|"]
    for r in result["rows"]:
        c = r["against_default"]
        model = _model_name(r["model"])
        ratio = r.get("faces_per_s_vs_keras", "")
        lines.append(f"| {model} | {r['input']} | {r['variant']} | {r.get('runtime', 'keras')} | "
                     f"{r['images_per_s']:.1f} | {r['faces_per_s']:.1f} | {ratio} | {r['ms_per_image']:.1f} | "
                     f"{c['same_face_count']}/{c['images']} | {c['median_iou']} | "
                     f"{c['same_label']}/{c['faces_reference']} |")
    for m in result.get("model_alone", []):
        lines.append(f"| {_model_name(m['model'])} | photos' faces | model alone: one call on "
                     f"{m['faces']} faces, median of {m['calls']} | {m['runtime']} | | {m['faces_per_s']:.1f} | "
                     f"{m.get('faces_per_s_vs_keras', '')} | "
                     f"{m['ms_per_call']:.1f} per call | | | |")
    for c in result.get("shift_controls", []):
        model = _model_name(c["model"])
        lines.append(f"| {model} | photos | control: in turn's boxes moved {c['shift_px']} px right "
                     f"and down | {c.get('runtime', 'keras')} | | | | | | | {c['same_label']}/{c['faces']} |")
        if "stable" in c:
            lines.append(f"| {model} | photos | stability: in turn's boxes moved {c['shift_px']} px "
                         f"in each of 8 directions, all keep the label | {c.get('runtime', 'keras')} | | | | | | | "
                         f"{c['stable']}/{c['faces']} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--video-frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help="csa (the CSA in the box), vrn (a VRN baseline with random weights), or a "
                             "model in the box by name (default: csa vrn_fer2013)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), default=default_runtimes(),
                        help="what runs the model: keras, litert (its TFLite artifact, for the models "
                             "that ship one) (default: both where ai-edge-litert is installed, else keras)")
    parser.add_argument("--json", action="store_true", help="progress on stderr, then one JSON line")
    args = parser.parse_args(argv)
    if "litert" in args.runtimes and "litert" not in default_runtimes():
        parser.error("--runtimes litert needs the LiteRT interpreter: pip install ai-edge-litert")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else print
    result = measure(args.photos, args.video_frames, args.repeats, args.models, args.variants,
                     args.runtimes, log=log)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
