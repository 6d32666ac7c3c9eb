"""Decoding and cropping many samples across worker processes, with a progress bar.

Viola-Jones detection on 640x480 frames is CPU bound and OpenCV's own
threading barely helps it, so :func:`process_all` spreads the files over
worker processes, each running OpenCV single-threaded with its own lazily
loaded cascade. Workers are forked where that is safe and spawned
otherwise (:func:`pool_context`).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from csa_keras.data.dataset import Sample
from csa_keras.data.faces.crop import crop_face
from csa_keras.data.faces.decode import ImageDecodeError, image_from_pixels, read_image
from csa_keras.data.faces.detect import Box, LazyFaceDetector
from csa_keras.data.faces.settings import FaceSettings

Outcome = tuple[np.ndarray | None, str, Box | None]
"""What became of one sample: ``(face or None, outcome or skip reason, crop box or None)``
(the outcome a word of :data:`~csa_keras.data.faces.locate.OUTCOMES`)."""


def process_sample(
    source: str,
    box: Sequence[float] | None,
    pixels: np.ndarray | None,
    settings: FaceSettings,
    needs_detection: bool,
    detector: LazyFaceDetector,
) -> Outcome:
    """Decode and crop one sample; a file that cannot be decoded gives its reason as the status."""
    if pixels is not None:
        image = image_from_pixels(pixels)
        if image is None:
            return None, "bad_pixels", None
        original_shape = None
    else:
        try:
            image, original_shape = read_image(source, settings.max_side)
        except ImageDecodeError as error:
            return None, error.reason, None
    return crop_face(image, settings, box, needs_detection, detector, source, original_shape)


class _Bar(tqdm):
    """A tqdm bar without tqdm's monitor thread, so a process stays single-threaded and can fork workers."""

    monitor_interval = 0


_WORKER_STATE: dict = {}


def _init_worker(settings: FaceSettings, needs_detection: bool, forked: bool) -> None:
    """Per worker process: one OpenCV thread (the pool supplies the parallelism), one lazy cascade.

    Ctrl-C is the parent's to handle (it shuts the pool down and says so in
    one line); a worker ignores it rather than print a traceback of its own.

    A forked worker already inherits one OpenCV thread from the parent (see
    :func:`process_all`); calling ``cv2.setNumThreads`` there would tear
    down a thread pool copied mid-state and can deadlock.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not forked:
        cv2.setNumThreads(1)
    _WORKER_STATE.update(settings=settings, needs_detection=needs_detection, detector=LazyFaceDetector(settings))


def _work(item: tuple[str, tuple | None]) -> Outcome:
    """:func:`process_sample` of one file, in a worker set up by :func:`_init_worker`."""
    source, box = item
    state = _WORKER_STATE
    return process_sample(source, box, None, state["settings"], state["needs_detection"], state["detector"])


def pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` where it is safe (POSIX but not macOS, one Python thread, TensorFlow not loaded), else ``spawn``.

    Forked workers start at once and need no ``if __name__ == "__main__"``
    guard in the calling script; once TensorFlow runs its thread pools a
    fork would copy them in an undefined state, so fresh processes are
    spawned instead.
    """
    forkable = (
        "fork" in multiprocessing.get_all_start_methods()
        and sys.platform != "darwin"
        and threading.active_count() == 1
        and "tensorflow" not in sys.modules
    )
    return multiprocessing.get_context("fork" if forkable else "spawn")


def process_all(
    samples: Sequence[Sample],
    settings: FaceSettings,
    needs_detection: bool,
    workers: int,
    progress: bool,
) -> list[Outcome]:
    """The outcome of :func:`process_sample` for every sample, files spread over ``workers`` processes.

    Inline-pixel samples are cheap and stay in this process (while the
    pool works on the files). Forked workers are all started by the first
    ``map`` submission; around it OpenCV is set to one thread, so no
    OpenCV thread pool is copied into a child in the middle of its work.
    Spawned workers (once TensorFlow is loaded) import the caller's main
    module, as ``multiprocessing`` does; should the pool break (a script
    without an ``if __name__ == "__main__"`` guard), the remaining files
    are processed here after a warning.
    """
    outcomes: list = [None] * len(samples)
    file_items = [(i, s.source, s.box) for i, s in enumerate(samples) if s.pixels is None]
    detector = LazyFaceDetector(settings)
    executor = results = None
    if workers > 1:
        chunksize = max(1, min(256, -(-len(file_items) // (workers * 16))))
        context = pool_context()
        forked = context.get_start_method() == "fork"
        threads = cv2.getNumThreads()
        if forked:
            cv2.setNumThreads(1)
        try:
            executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(settings, needs_detection, forked),
            )
            results = executor.map(_work, [(source, box) for _, source, box in file_items], chunksize=chunksize)
        finally:
            if forked:
                cv2.setNumThreads(threads)
    try:
        with _Bar(total=len(samples), desc="faces", unit="img", disable=not progress, leave=False) as bar:
            for i, sample in enumerate(samples):
                if sample.pixels is not None:
                    outcomes[i] = process_sample(sample.source, sample.box, sample.pixels, settings,
                                                 needs_detection, detector)
                    bar.update(1)
            done = 0
            if results is not None:
                try:
                    for (index, _, _), outcome in zip(file_items, results):
                        outcomes[index] = outcome
                        done += 1
                        bar.update(1)
                except concurrent.futures.process.BrokenProcessPool as error:
                    warnings.warn(
                        f"face preprocessing workers failed ({error}); finishing in this process. "
                        "A script that uses workers > 1 must guard its entry point with "
                        "'if __name__ == \"__main__\":'",
                        RuntimeWarning, stacklevel=3,
                    )
            for index, source, box in file_items[done:]:
                outcomes[index] = process_sample(source, box, None, settings, needs_detection, detector)
                bar.update(1)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return outcomes
