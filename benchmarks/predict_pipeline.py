"""Prediction end to end: decode, detect, crop, classify and record, on photographs and a video.

What ``python -m csa_keras.predict`` does with a folder of photographs or a
video file, timed in one process once the model is loaded and warm:
:meth:`csa_keras.inference.Predictor.predict_paths` consumed to the last
record. The inputs are built here, so no dataset is needed: ``--photos``
640x480 JPEG photographs (``face_detection.make_frames``: the photograph
matplotlib ships, pasted at random scales, positions and brightness, one face
each) and a 640x480 MJPG video of ``--video-frames`` frames at 25 frames/s
(the same photograph gliding across a grey background).

Models: the pretrained CSA installed with the package (``csa``), a Voting
ResNet baseline (``vrn``: 48x48 RGB, random weights: its speed is its
architecture's, not its training's), or any model in the box by name
(``csa_fer2013``, ``vrn_fer2013``). Variants, alternated ``--repeats`` times per input (medians):

``in turn``
    decoding and detection in turn with the model, faces from the cascade's
    own 24-pixel window up: the default path.
``overlapped``
    a thread decodes and searches up to 64 images ahead while the model
    classifies (``Predictor(prefetch=64)``).
``overlapped, min_face 48``
    and faces of at least 48 pixels only (``--min-face 48``): the search runs
    on a copy reduced by half and the boxes are scaled back.

Each variant's records are compared with ``in turn``'s on the same input:
the faces found per image (same count), the overlap (IoU) of their boxes, and
the labels. The label's stability, the control for the labels of other
boxes: each face of the reference is cropped again with its box moved
``JITTER_PX`` pixels in each of the 8 directions (right, left, up, down and
the diagonals) and classified; a face is stable when all 8 keep its label.
The command's start-up is ``startup.py``'s.

    python benchmarks/predict_pipeline.py [--photos 100] [--video-frames 150] [--repeats 3]
        [--models csa vrn] [--json]
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
JITTER_PX = 3
"""The shift of the control that says how much a few pixels change the labels by themselves."""
SHIFTS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0))
"""The 8 directions a box is moved in, in units of ``JITTER_PX``."""


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


def _predictors(model_name: str, variants) -> dict:
    """One predictor per variant, all on one model: the pretrained CSA, one random VRN baseline,
    or a model in the box by name."""
    from csa_keras.inference.predictor import Predictor

    if model_name == "csa":
        return {v: Predictor.pretrained(**VARIANTS[v]) for v in variants}
    if model_name != "vrn":
        return {v: Predictor.pretrained(model_name, **VARIANTS[v]) for v in variants}
    from voting_resnet.models import build_voting_resnet

    model = build_voting_resnet(7, input_shape=(48, 48, 3), split_after=0)
    return {v: Predictor(model, **VARIANTS[v]) for v in variants}


def label_stability(predictor, records: list[dict], shift: int = JITTER_PX) -> dict:
    """How often a face keeps its label when its box moves ``shift`` pixels, in each of 8 directions.

    The control for the labels of another detection's boxes: a crop a few
    pixels off changes a classifier's answer on some faces whatever found it.
    ``stable``: faces whose label all 8 shifted boxes keep; ``same_label``:
    faces that keep it with the box moved right and down (the diagonal
    alone, as earlier reports measured). Photographs only (their records name
    the file).
    """
    from csa_keras.data.faces import crop_face, read_image

    crops, labels = [], []
    for record in records:
        if record["status"] != "ok" or record["frame"] is not None:
            continue
        rgb, _ = read_image(record["source"], predictor.settings.max_side)
        x, y, w, h = record["box"]
        for dx, dy in SHIFTS:
            face, _, _ = crop_face(rgb, predictor.settings,
                                   box=(x + dx * shift, y + dy * shift, w, h))
            crops.append(face)
        labels.append(record["label"])
    if not labels:
        return {"faces": 0, "same_label": 0, "stable": 0, "shift_px": shift}
    probabilities = predictor.classify(np.stack(crops))
    names = np.asarray(predictor.class_names)[np.argmax(probabilities, axis=1)]
    kept = names.reshape(len(labels), len(SHIFTS)) == np.asarray(labels)[:, None]
    return {"faces": len(labels), "same_label": int(kept[:, SHIFTS.index((1, 1))].sum()),
            "stable": int(kept.all(axis=1).sum()), "shift_px": shift,
            "directions": len(SHIFTS)}


def run_once(predictor, inputs) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    records = list(predictor.predict_paths(inputs, progress=False))
    return time.perf_counter() - start, records


def measure(photos: int = 100, video_frames: int = 150, repeats: int = 3, models=("csa", "vrn"),
            variants=tuple(VARIANTS), log=print) -> dict:
    rows, controls = [], []
    variants = list(variants)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        face_detection.make_frames(folder, photos)
        video = make_video(Path(tmp) / "video.avi", video_frames)
        inputs = {"photos": ([folder], photos), "video": ([video], video_frames)}
        log(f"{photos} photographs and a {video_frames}-frame video, 640x480; {os.cpu_count()} cores "
            f"(load average {os.getloadavg()[0]:.1f}); OpenCV {cv2.__version__}; median of {repeats} runs")
        for model_name in models:
            predictors = _predictors(model_name, variants)
            for predictor in predictors.values():
                run_once(predictor, [next(folder.iterdir())])
            for input_name, (paths, n_images) in inputs.items():
                times: dict[str, list[float]] = {v: [] for v in variants}
                records: dict[str, list[dict]] = {}
                for _ in range(repeats):
                    for variant, predictor in predictors.items():
                        seconds, records[variant] = run_once(predictor, paths)
                        times[variant].append(seconds)
                reference = records.get(REFERENCE_VARIANT, next(iter(records.values())))
                if input_name == "photos":
                    control = label_stability(predictors[variants[0]], reference)
                    controls.append({"model": model_name, **control})
                    log(f"{model_name} stability: the reference boxes moved {JITTER_PX} px keep their "
                        f"label in all 8 directions on {control['stable']}/{control['faces']} faces, "
                        f"right and down on {control['same_label']}")
                for variant in variants:
                    seconds = statistics.median(times[variant])
                    faces = sum(r["status"] == "ok" for r in records[variant])
                    row = {"model": model_name, "input": input_name, "variant": variant,
                           "images": n_images, "faces": faces, "seconds": round(seconds, 3),
                           "faces_per_s": round(faces / seconds, 1),
                           "images_per_s": round(n_images / seconds, 1),
                           "ms_per_image": round(1000 * seconds / n_images, 2),
                           "against_default": compare(reference, records[variant])}
                    rows.append(row)
                    log(f"{model_name} {input_name:<6} {variant:<24} {row['images_per_s']:7.1f} images/s "
                        f"{row['faces_per_s']:7.1f} faces/s  same faces: "
                        f"{row['against_default']['same_face_count']}/{n_images}, median IoU "
                        f"{row['against_default']['median_iou']}")
    return {"photos": photos, "video_frames": video_frames, "repeats": repeats, "rows": rows,
            "shift_controls": controls}


def _model_name(name: str) -> str:
    return {"csa": "CSA (pretrained)", "vrn": "VRN baseline"}.get(name, f"`{name}`")


def markdown(result: dict) -> str:
    lines = ["| model | input | variant | images/s | faces/s | ms/image | same faces as in turn | "
             "median box IoU | same label |", "|---|---|---|---:|---:|---:|---|---:|---|"]
    for r in result["rows"]:
        c = r["against_default"]
        model = _model_name(r["model"])
        lines.append(f"| {model} | {r['input']} | {r['variant']} | {r['images_per_s']:.1f} | "
                     f"{r['faces_per_s']:.1f} | {r['ms_per_image']:.1f} | "
                     f"{c['same_face_count']}/{c['images']} | {c['median_iou']} | "
                     f"{c['same_label']}/{c['faces_reference']} |")
    for c in result.get("shift_controls", []):
        model = _model_name(c["model"])
        lines.append(f"| {model} | photos | control: in turn's boxes moved {c['shift_px']} px right "
                     f"and down | | | | | | {c['same_label']}/{c['faces']} |")
        if "stable" in c:
            lines.append(f"| {model} | photos | stability: in turn's boxes moved {c['shift_px']} px "
                         f"in each of 8 directions, all keep the label | | | | | | "
                         f"{c['stable']}/{c['faces']} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--video-frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["csa", "vrn"],
                        help="csa (the default model in the box), vrn (a random VRN baseline), or a "
                             "model in the box by name (default: csa vrn)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", action="store_true", help="progress on stderr, then one JSON line")
    args = parser.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else print
    result = measure(args.photos, args.video_frames, args.repeats, args.models, args.variants, log=log)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
