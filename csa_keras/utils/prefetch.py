"""Run an iterator ahead of its consumer in a thread, so that their work overlaps.

Prediction decodes and searches one image for faces while the model
classifies the faces of earlier ones: OpenCV's decoding and detection and
TensorFlow's kernels release the interpreter lock, so a producer thread and
the consumer run on separate cores at once. :func:`prefetch` keeps at most
``depth`` items in hand, hands the producer's exception (any, ``NoFaceError``
included) to the consumer at the point it would have been raised, and stops
the producer when the consumer stops early (Ctrl-C, an error, a generator
closed unfinished).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """The items of ``items``, in order, produced by a thread up to ``depth`` ahead (0: no thread)."""
    if depth < 1:
        yield from items
        return
    hand: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                hand.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put((False, error))
            return
        put((True, _DONE))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = hand.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
