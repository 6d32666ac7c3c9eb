"""A whole catalogue to faces: the cache first, then the worker pool, then the account of skips.

:func:`preprocess_samples` is what :func:`~csa_keras.data.loader.load_dataset`
calls on every dataset: it looks the samples up in the on-disk cache
(:mod:`~csa_keras.data.faces.cache`), otherwise decodes and crops them in
worker processes (:mod:`~csa_keras.data.faces.pool`), counts every skip by
reason, and stores the result for the next run.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from csa_keras.data.dataset import Sample, SkipLog
from csa_keras.data.faces.cache import cache_file, cache_key, load_cache, resolve_cache_dir, save_cache
from csa_keras.data.faces.pool import process_all
from csa_keras.data.faces.result import PreprocessResult
from csa_keras.data.faces.settings import FaceSettings


def preprocess_samples(
    samples: Sequence[Sample],
    settings: FaceSettings = FaceSettings(),
    needs_detection: bool = False,
    workers: int | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Decode and crop every sample into a face, in parallel, cached on disk.

    Files are decoded with :func:`~csa_keras.data.faces.decode.read_image`
    and cropped as :func:`~csa_keras.data.faces.crop.preprocess_image` does;
    samples carrying inline ``pixels`` (``fer2013.csv``) use them directly.
    A file that cannot be decoded and a frame without a face under
    ``no_face="skip"`` are left out and counted in ``skipped`` by reason
    (``no_face`` for the latter); ``no_face="error"`` raises
    :class:`~csa_keras.data.faces.locate.NoFaceError`.

    ``workers`` processes (default ``os.cpu_count()``, at most one per
    file) each load the cascade once and run OpenCV single-threaded;
    ``workers=1`` runs in this process (OpenCV keeps its own threading).
    Workers are forked where that is safe and spawned otherwise (see
    :func:`~csa_keras.data.faces.pool.pool_context`); the progress bar
    (tqdm, on stderr) shows with ``progress=True``.
    ``cache_dir``: a folder, ``None`` for
    :func:`~csa_keras.data.faces.cache.default_cache_dir`, or ``False`` for
    no cache. The entry is one ``.npz`` per
    :func:`~csa_keras.data.faces.cache.cache_key`, written atomically; an
    identical later call loads it without decoding or detecting anything.
    """
    if not isinstance(settings, FaceSettings):
        raise ValueError(f"settings must be a FaceSettings. Received: settings of type {type(settings).__name__}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer. Received: workers={workers!r}")
    start = time.perf_counter()
    samples = list(samples)
    folder = resolve_cache_dir(cache_dir)
    key = cache_path = None
    if folder is not None:
        key = cache_key(samples, settings, needs_detection)
        cache_path = cache_file(folder, key)
        cached = load_cache(cache_path, key, len(samples), settings)
        if cached is not None:
            cached.seconds = time.perf_counter() - start
            return cached

    n_files = sum(s.pixels is None for s in samples)
    workers = min(workers or os.cpu_count() or 1, max(1, n_files))
    outcomes = process_all(samples, settings, needs_detection, workers, progress)
    faces = [outcome[0] for outcome in outcomes]
    statuses = np.array([outcome[1] for outcome in outcomes], dtype=object)
    boxes = np.full((len(samples), 4), -1, dtype=np.int64)
    for i, outcome in enumerate(outcomes):
        if outcome[2] is not None:
            boxes[i] = outcome[2]

    skipped = SkipLog()
    kept = []
    for i, (face, status) in enumerate(zip(faces, statuses)):
        if face is not None:
            kept.append(i)
        else:
            skipped.add(status, samples[i].source)
    shape = (settings.size, settings.size, settings.channels)
    images = np.stack([faces[i] for i in kept]) if kept else np.zeros((0, *shape), dtype=np.uint8)
    result = PreprocessResult(
        images=images,
        kept=np.asarray(kept, dtype=np.int64),
        skipped=skipped,
        statuses=statuses,
        boxes=boxes,
        n_detected=int(np.sum(statuses == "detected")),
        n_no_face=int(np.sum((statuses == "no_face") | (statuses == "center"))),
        from_cache=False,
        cache_path=None if cache_path is None else str(cache_path),
    )
    if cache_path is not None:
        save_cache(cache_path, result, key)
    result.seconds = time.perf_counter() - start
    return result
