"""Viola-Jones face preprocessing throughput on 640x480 photographs.

Builds ``--frames`` 640x480 JPEG frames from the photograph matplotlib ships
(``grace_hopper.jpg``), pasted at seeded random scales, positions and
brightness on a grey canvas, then times :func:`preprocess_samples` (decode,
detect, crop, resize to 48x48 grey) in one process (with OpenCV's own
threading, then with one OpenCV thread), across ``--workers`` processes,
and the rerun served from the on-disk cache. Each figure is the
median of ``--repeats`` runs. Needs no dataset::

    python benchmarks/face_detection.py [--frames 200] [--repeats 3] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image

from csa_keras.data.dataset import Sample
from csa_keras.data.faces import FaceSettings, preprocess_samples


def make_frames(folder: Path, n: int, seed: int = 0) -> list[Sample]:
    """``n`` 640x480 JPEG frames, each holding one face at a random scale and position."""
    photo = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        scale = rng.uniform(0.35, 0.8)
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gain = rng.uniform(0.7, 1.2)
        small = np.clip(small.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        canvas = np.full((480, 640, 3), int(rng.integers(40, 200)), dtype=np.uint8)
        h, w = small.shape[:2]
        y, x = int(rng.integers(0, 480 - h + 1)), int(rng.integers(0, 640 - w + 1))
        canvas[y:y + h, x:x + w] = small
        path = folder / f"frame_{i:04d}.jpg"
        Image.fromarray(canvas).save(path, quality=90)
        samples.append(Sample(str(path), "neutral"))
    return samples


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def timed(samples: list[Sample], repeats: int, **kwargs) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls of :func:`preprocess_samples`, and the last result.

    CPU seconds (this process plus its workers) show the work done whatever
    else shares the machine; wall seconds show what a user waits.
    """
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        result = preprocess_samples(samples, FaceSettings(detect="always"), progress=False, **kwargs)
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - start_cpu)
    return statistics.median(wall), statistics.median(cpu), result


def _line(label: str, n: int, wall: float, cpu: float, note: str = "") -> str:
    return (f"{label:<28}{wall:7.2f} s  {n / wall:7.1f} images/s  "
            f"{1000 * cpu / n:6.1f} CPU ms/image{note}")


def measure(frames: int = 200, repeats: int = 3, workers: int | None = None, log=print) -> dict:
    """Face preprocessing of ``frames`` synthetic 640x480 photographs: 1 process, all cores, cached.

    Returns the images per second and CPU milliseconds per image of each way,
    ``log`` printing one line per figure as it comes.
    """
    workers = workers or os.cpu_count() or 1
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        samples = make_frames(folder, frames)
        n = len(samples)
        log(f"{n} frames 640x480 JPEG, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), "
            f"OpenCV {cv2.__version__}, median of {repeats} runs")

        def record(key, label, wall, cpu, note=""):
            figures[key] = {"label": label, "seconds": round(wall, 3),
                            "images_per_s": round(n / wall, 1),
                            "cpu_ms_per_image": round(1000 * cpu / n, 1)}
            log(_line(label, n, wall, cpu, note))

        single, single_cpu, result = timed(samples, repeats, workers=1, cache_dir=False)
        log(f"detected a face in {result.n_detected}/{n} frames")
        record("one_process", "1 process", single, single_cpu, f"  (OpenCV threads: {cv2.getNumThreads()})")
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        serial, serial_cpu, _ = timed(samples, repeats, workers=1, cache_dir=False)
        cv2.setNumThreads(threads)
        record("one_thread", "1 process, 1 OpenCV thread", serial, serial_cpu)

        parallel, parallel_cpu, result_parallel = timed(samples, repeats, workers=workers, cache_dir=False)
        same = np.array_equal(result.images, result_parallel.images)
        record("all_cores", f"{workers} processes", parallel, parallel_cpu,
               f"  (x{serial / parallel:.2f} on 1 thread; identical faces: {same})")

        cache = folder / "cache"
        preprocess_samples(samples, FaceSettings(detect="always"), workers=workers, cache_dir=cache, progress=False)
        cached, cached_cpu, result_cached = timed(samples, repeats, workers=workers, cache_dir=cache)
        assert result_cached.from_cache
        figures["cached"] = {"label": "cached rerun", "seconds": round(cached, 4),
                             "images_per_s": round(n / cached, 1),
                             "cpu_ms_per_image": round(1000 * cached_cpu / n, 3)}
        log(f"{'cached rerun':<28}{cached * 1000:7.1f} ms for all {n} (no decoding, no detection)")
    return {"frames": n, "faces_found": int(result.n_detected), "workers": workers,
            "identical_faces": bool(same), "repeats": repeats, "figures": figures}


def markdown(result: dict) -> str:
    lines = ["| face preprocessing (640x480 JPEG -> 48x48) | images/s | CPU ms/image |", "|---|---|---|"]
    lines += [f"| {f['label']} | {f['images_per_s']:.1f} | {f['cpu_ms_per_image']} |"
              for f in result["figures"].values()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="number of 640x480 frames (default: 200)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported (default: 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the parallel figure (default: all cores)")
    parser.add_argument("--json", action="store_true",
                        help="progress on stderr, then the figures as one JSON line on stdout")
    args = parser.parse_args()
    if args.json:
        result = measure(args.frames, args.repeats, args.workers,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(result))
    else:
        measure(args.frames, args.repeats, args.workers)


if __name__ == "__main__":
    main()
