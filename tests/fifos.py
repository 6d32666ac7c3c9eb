"""FIFOs for the tests of special files, watched so that code which opens one fails its test instead of hanging it."""
from __future__ import annotations

import contextlib
import errno
import os
import threading
import time


@contextlib.contextmanager
def watched_fifos(*paths):
    """Make a FIFO at each path and yield an ``Event`` that is set if anything opens one of them for reading.

    A thread keeps trying to open each write end without blocking. That
    succeeds only while some process holds the FIFO open for reading (or
    waits in ``open`` for a writer); the thread then closes it at once, so
    that reader sees an end of file and goes on, and the test can assert
    that nothing ever opened the FIFO.
    """
    for path in paths:
        os.mkfifo(path)
    opened, stop = threading.Event(), threading.Event()

    def watch():
        while not stop.is_set():
            for path in paths:
                try:
                    descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as error:
                    if error.errno != errno.ENXIO:
                        raise
                    continue
                opened.set()
                os.close(descriptor)
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join(timeout=5)
