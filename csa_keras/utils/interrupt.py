"""Ctrl-C held back until the code reaches a point where stopping is safe.

Python turns Ctrl-C into a ``KeyboardInterrupt`` at whatever bytecode the
main thread runs next. Inside TensorFlow's and Keras's Python layers that can
be halfway through building a ``tf.data`` iterator, tracing a function or
handing a tensor to C++, and code there is not written to be abandoned at an
arbitrary instruction: TensorFlow's import swallows the exception and goes
on, and a Ctrl-C in the middle of a training step once ended the training
command with a segmentation fault instead of the one line and exit status
130 the commands promise.

:class:`HeldInterrupt` stands in for Python's own Ctrl-C handler for a block:
a press is recorded, and raised as ``KeyboardInterrupt`` by :meth:`~HeldInterrupt.check`
at the points the caller knows to be safe (between two training steps), or
when the block ends. With ``escalate=True`` a second press raises at once, so
a user is never left waiting on code that reaches no safe point. Only the main
thread handles signals, and only Python's default handler is replaced: an
ignored or custom Ctrl-C handler is left alone, and then nothing is held.
"""
from __future__ import annotations

import signal
import threading


class HeldInterrupt:
    """``with HeldInterrupt() as held: ... held.check() ...``: Ctrl-C raised only at ``check()``
    or when the block ends (see the module docstring)."""

    def __init__(self, escalate: bool = False) -> None:
        self.escalate = escalate
        self.presses = 0
        self._previous = None

    @property
    def active(self) -> bool:
        """Whether this block holds Ctrl-C back (it does not off the main thread, nor when Ctrl-C
        was not Python's default handler on entry)."""
        return self._previous is not None

    def _press(self, signum, frame) -> None:
        self.presses += 1
        if self.escalate and self.presses > 1:
            raise KeyboardInterrupt

    def __enter__(self) -> HeldInterrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the block began."""
        if self.presses:
            raise KeyboardInterrupt

    def __exit__(self, kind, value, traceback) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if kind is None:
            self.check()
