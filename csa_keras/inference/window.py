"""A live window: each classified frame of a stream shown as it arrives (``predict --show``).

:class:`LiveWindow` shows the frames of a
:class:`~csa_keras.inference.stream.FrameStream` in an OpenCV HighGUI
window, each drawn by :func:`frame_canvas`: the faces' boxes with their
smoothed ``label score`` (:func:`~csa_keras.inference.annotate.draw_records`,
as the annotated copies have them) and the frames per second measured.
``q``, ``Q`` or Esc in the window, or closing it, ends the stream.

A window needs a display and an OpenCV built with HighGUI, and neither can
be taken for granted: the package depends on ``opencv-python-headless``,
whose wheels have no HighGUI (``cv2.imshow`` raises) and need none of the
desktop libraries (``libGL``, ``libglib``, X11) that the GUI wheels load
when ``cv2`` is imported, so that training, the HTTP service and a
container import ``cv2`` anywhere. :func:`check_window` says, in one line
and before any work, what is missing: a ``DISPLAY`` on Linux (an SSH session
without X forwarding, a server; OpenCV's Qt build would abort the process
there), else HighGUI, with which OpenCV distribution is installed and what
to install instead (docs/prediction.md, "A live window").
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import cv2
import numpy as np

from csa_keras.inference.annotate import draw_records

if TYPE_CHECKING:
    from csa_keras.inference.stream import StreamFrame

QUIT_KEYS = (ord("q"), ord("Q"), 27)
"""Keys that close the window: q, Q and Esc."""

OPENCV_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
                        "opencv-contrib-python-headless")
"""The four wheels of OpenCV on PyPI; each installs the same ``cv2`` package, with or without HighGUI."""

_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


def highgui_backend(build_information: str | None = None) -> str | None:
    """The GUI OpenCV was built with (``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``...), ``None`` without one.

    Read from the ``GUI:`` section of ``cv2.getBuildInformation()`` (or
    ``build_information``): its value (``NONE`` in the headless wheels), or
    in older builds the first toolkit under it marked ``YES``.
    """
    text = cv2.getBuildInformation() if build_information is None else build_information
    match = re.search(r"^[ \t]*GUI:[ \t]*(\S*)[ \t]*\n((?:[ \t]+\S.*\n?)*)", text, re.MULTILINE)
    if match is None:
        return None
    value, section = match.group(1), match.group(2)
    if value:
        return None if value.upper() == "NONE" else value
    for name, state in re.findall(r"^[ \t]*([^:\n]+?):[ \t]*(\S+)", section, re.MULTILINE):
        if state.upper() == "YES" and "VTK" not in name and "OpenGL" not in name:
            return name.strip()
    return None


def installed_opencv() -> list[str]:
    """The OpenCV distributions installed here, as ``name version`` (more than one overwrite each other's ``cv2``)."""
    found = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def check_window(environ: Mapping[str, str] | None = None, platform: str | None = None,
                 build_information: str | None = None) -> str:
    """The HighGUI backend a window opens with here, or a one-line ``ValueError`` saying what is missing.

    ``environ``, ``platform`` and ``build_information``: the process's own
    (``os.environ``, ``sys.platform``, ``cv2.getBuildInformation()``) unless
    given.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith("linux") and not environ.get("DISPLAY"):
        raise ValueError("show=True needs a display to open its window on, and DISPLAY is not set (a server, "
                         "a container or an SSH session without X forwarding): run it on a desktop, with ssh -X, "
                         "or under xvfb-run. Received: show=True")
    backend = highgui_backend(build_information)
    if backend is None:
        installed = ", ".join(installed_opencv()) or f"OpenCV {cv2.__version__}"
        raise ValueError(f"show=True needs OpenCV with HighGUI, and the one installed ({installed}) has none: "
                         "pip uninstall -y opencv-python-headless, then pip install 'opencv-python<5' (or "
                         "'opencv-contrib-python<5', the one mediapipe and fer install). Received: show=True")
    return backend


def frame_canvas(frame: StreamFrame) -> np.ndarray:
    """The BGR image a window shows for ``frame``: its smoothed records drawn, and its frames per second."""
    if frame.image is None:
        raise ValueError(f"frame must carry its image to be shown. Received: frame {frame.frame} without one")
    canvas = draw_records(frame.image, frame.smoothed, frame.original_shape)
    height, width = canvas.shape[:2]
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(2 * scale))
    text = f"{frame.fps:.1f} fps"
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = max(0, width - tw - 6), height - baseline - 4
    cv2.rectangle(canvas, (x - 2, y - th - 4), (width - 1, height - 1), _BLACK, -1)
    cv2.putText(canvas, text, (x, y), font, scale, _WHITE, thickness, cv2.LINE_AA)
    return canvas


class LiveWindow:
    """A HighGUI window that shows :class:`~csa_keras.inference.stream.StreamFrame` s (module docstring).

    :meth:`show` draws a frame and answers whether to go on: ``False`` once
    a quit key was pressed or the window was closed. :attr:`shown` counts the
    frames shown. Use it in a ``with`` block, or call :meth:`close`, to
    destroy the window. The window opens on the first frame; call
    :func:`check_window` before any work to refuse early where it cannot.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.shown = 0
        self.stopped = False
        self._reports_visibility = False
        self._destroyed = False

    def show(self, frame: StreamFrame) -> bool:
        """Show ``frame``; ``False`` when the user asked to stop (a quit key, the window closed)."""
        if self.stopped:
            return False
        canvas = frame_canvas(frame)
        if self.shown == 0:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        cv2.imshow(self.title, canvas)
        self.shown += 1
        key = cv2.waitKey(1)
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        if visible >= 1:
            self._reports_visibility = True
        closed = self._reports_visibility and visible < 1
        if (key != -1 and key & 0xFF in QUIT_KEYS) or closed:
            self.stopped = True
        return not self.stopped

    def close(self) -> None:
        """Destroy the window (if it opened). Idempotent."""
        if self.shown and not self._destroyed:
            self._destroyed = True
            with contextlib.suppress(cv2.error):  # a window the user closed may be gone already
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)

    def __enter__(self) -> LiveWindow:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close()
