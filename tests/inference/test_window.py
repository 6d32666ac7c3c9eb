"""``python -m csa_keras.predict --show``: the live window, and its refusal where no window can open.

The package's OpenCV is the headless build (no HighGUI), so the window is
tested with an OpenCV that has one, put in front of it on ``PYTHONPATH`` for
the command alone: ``$CSA_KERAS_TEST_GUI_OPENCV``, else ``<venv>/gui-opencv``
(``make venv`` installs ``opencv-python`` of the same version there,
``pip install --target``: two OpenCV distributions in one ``site-packages``
overwrite each other's files). The display is an Xvfb server started here
(``Xvfb``, ``xdotool``, ``xwininfo`` and ``xwd``: Debian's xvfb, xdotool,
x11-utils and x11-apps, which ``.ci/run`` installs). Without them the window
tests skip, saying why; the refusals are tested everywhere.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from commands import call_main

from csa_keras.inference.annotate import _GREEN
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.window import LiveWindow, check_window, frame_canvas, highgui_backend
from csa_keras.predict import main

PROG = "python -m csa_keras.predict"
SIZE = (256, 300)
"""The test video's frames, width by height: Grace Hopper's photograph reduced."""

HEADLESS_4_14 = ("  Video I/O:\n\n  GUI:                           NONE\n"
                 "    VTK support:                 NO\n\n  Media I/O:\n")
QT_4_14 = "  GUI:                           QT5\n    QT:                          YES (ver 5.15.19 )\n"
OLD_GTK = "  GUI: \n    QT:                          NO\n    GTK+:                        YES (ver 3.24.5)\n"
OLD_NONE = "  GUI: \n    GTK+:                        NO\n    VTK support:                 NO\n\n"


def write_video(path: Path, photograph: Path, frames: int) -> Path:
    """An MJPG video of ``frames`` frames of the photograph, shifted a little each frame."""
    image = cv2.resize(cv2.imread(str(photograph)), SIZE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.roll(image, 2 * (i % 8), axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def short_video(tmp_path_factory, grace_hopper):
    return write_video(tmp_path_factory.mktemp("window") / "hopper.avi", grace_hopper, 6)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory, grace_hopper):
    return write_video(tmp_path_factory.mktemp("window") / "long.avi", grace_hopper, 600)


# ----------------------------------------------------------------------------- refusals


def test_check_window_says_what_is_missing():
    with pytest.raises(ValueError, match=r"^show=True needs a display to open its window on, and DISPLAY is not "
                                         r"set .* under xvfb-run. Received: show=True$"):
        check_window(environ={}, platform="linux", build_information=QT_4_14)
    with pytest.raises(ValueError, match=r"^show=True needs OpenCV with HighGUI, and the one installed \(.*\) has "
                                         r"none: pip uninstall -y opencv-python-headless, then pip install "
                                         r"'opencv-python<5' .* Received: show=True$"):
        check_window(environ={"DISPLAY": ":0"}, platform="linux", build_information=HEADLESS_4_14)
    assert check_window(environ={"DISPLAY": ":0"}, platform="linux", build_information=QT_4_14) == "QT5"
    assert check_window(environ={}, platform="darwin", build_information="  GUI: COCOA\n") == "COCOA"
    assert check_window(environ={}, platform="win32", build_information="  GUI: WIN32UI\n") == "WIN32UI"
    assert highgui_backend(OLD_GTK) == "GTK+" and highgui_backend(OLD_NONE) is None
    assert highgui_backend("no such section") is None


@pytest.mark.parametrize("environment", ["no display", "no highgui"])
def test_cli_show_refused_in_one_line_before_any_work(tiny_run, short_video, tmp_path, monkeypatch, capsys,
                                                      environment):
    if environment == "no display":
        monkeypatch.delenv("DISPLAY", raising=False)
        message = "--show needs a display to open its window on, and DISPLAY is not set"
    else:
        if highgui_backend() is not None:
            pytest.skip("this environment's OpenCV has HighGUI")
        monkeypatch.setenv("DISPLAY", ":0")
        message = "--show needs OpenCV with HighGUI, and the one installed (opencv-python-headless "
    loaded = []
    monkeypatch.setattr(Predictor, "from_run", classmethod(lambda *a, **k: loaded.append(a)))
    target = tmp_path / "records.jsonl"
    code, out, err = call_main(main, ["--model", tiny_run, "--stream", short_video, "--show", "--output", target],
                               capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"{PROG}: error: {message}") and lines[0].endswith("Received: --show")
    assert loaded == [] and not target.exists()


def test_cli_show_applies_to_live_sources_only(tiny_run, grace_hopper, capsys):
    code, out, err = call_main(main, ["--model", tiny_run, grace_hopper, "--show"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"{PROG}: error: --show applies to --camera and --stream only"


def test_the_window_shows_the_smoothed_records_and_the_frame_rate(tiny_run, short_video):
    predictor = Predictor.from_run(tiny_run, detect="never")
    with predictor.stream(short_video, smooth=3, max_frames=2) as frames:
        shown = list(frames)
    frame = shown[-1]
    assert frame.image.shape == (SIZE[1], SIZE[0], 3) and frame.original_shape == (SIZE[1], SIZE[0])
    canvas = frame_canvas(frame)
    assert canvas.shape == (SIZE[1], SIZE[0], 3) and canvas.dtype == np.uint8
    (record,) = frame.smoothed
    x, y, w, h = record["box"]  # the whole image: no detection
    assert (x, y, w, h) == (0, 0, SIZE[0], SIZE[1])
    assert tuple(canvas[SIZE[1] // 2, 0]) == _GREEN  # the box's left edge
    band = canvas[-20:, -60:]
    assert (band.min(axis=2) > 150).any() and (band == 0).all(axis=2).any()  # light "fps" on black
    plain = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    assert np.array_equal(canvas[40:-40, 40:-80], plain[40:-40, 40:-80])  # the picture itself untouched
    with pytest.raises(ValueError, match="frame must carry its image to be shown"):
        frame_canvas(type(frame)(frame.frame, frame.time_s, frame.records, frame.probabilities, frame.fps))
    window = LiveWindow("never opened")
    window.close()
    assert window.shown == 0


# ----------------------------------------------------------------------------- the window, under Xvfb


def _gui_opencv() -> str | None:
    """A ``PYTHONPATH`` entry that gives the command an OpenCV with HighGUI ('' : this one has it), or None."""
    if highgui_backend() is not None:
        return ""
    folder = os.environ.get("CSA_KERAS_TEST_GUI_OPENCV") or str(Path(sys.prefix) / "gui-opencv")
    if not (Path(folder) / "cv2").is_dir():
        return None
    probe = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getBuildInformation())"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": folder}, timeout=60)
    return folder if probe.returncode == 0 and highgui_backend(probe.stdout) else None


@pytest.fixture(scope="module")
def display():
    """An Xvfb server on a free display, and the environment the command runs in there."""
    missing = [tool for tool in ("Xvfb", "xdotool", "xwininfo", "xwd") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install xvfb xdotool x11-utils x11-apps)")
    gui = _gui_opencv()
    if gui is None:
        pytest.skip("no OpenCV with HighGUI to test the window with (make venv installs one in <venv>/gui-opencv)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    environment = {**os.environ, "DISPLAY": f":{number}", "PYTHONPATH": os.pathsep.join(
        p for p in (gui, str(Path(__file__).resolve().parents[2])) if p)}
    yield environment
    server.terminate()
    server.wait(timeout=30)


def _command(tiny_run, video, *args):
    return [sys.executable, "-m", "csa_keras.predict", "--model", str(tiny_run), "--stream", str(video),
            "--show", *args]


def _xwd_pixels(data: bytes) -> np.ndarray:
    """The RGB pixels of an XWD dump of a 24-bit window (X11's xwd file format)."""
    header = np.frombuffer(data[:100], ">u4")
    size, depth, width, height, order, bpp, stride, ncolors = (int(header[i]) for i in (0, 3, 4, 5, 7, 11, 12, 19))
    assert depth == 24 and bpp == 32
    start = size + 12 * ncolors
    pixels = np.frombuffer(data[start:start + stride * height], np.uint8).reshape(height, stride // 4, 4)[:, :width]
    return pixels[..., [2, 1, 0]] if order == 0 else pixels[..., [1, 2, 3]]


def test_the_window_shows_every_frame_and_the_command_exits_0(tiny_run, short_video, display):
    done = subprocess.run(_command(tiny_run, short_video), capture_output=True, text=True, env=display, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 6
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("6 faces in 6 frames, ") and "6 shown in a window" in summary, summary


def test_the_window_is_drawn_and_q_closes_it(tiny_run, long_video, display):
    command = subprocess.Popen(_command(tiny_run, long_video, "--detect", "never"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=display)
    try:
        def tool(*args):
            return subprocess.run(args, capture_output=True, text=True, env=display, timeout=120, check=True).stdout

        window = tool("xdotool", "search", "--sync", "--name", f"^{PROG}: ").split()[0]
        info = tool("xwininfo", "-id", window)
        assert "Width: 256" in info and "Height: 300" in info and "IsViewable" in info
        pixels = _xwd_pixels(subprocess.run(["xwd", "-id", window, "-silent"], capture_output=True, env=display,
                                            timeout=60, check=True).stdout)
        assert pixels.shape == (300, 256, 3)
        assert (pixels[:, 0] == (0, 200, 0)).all(axis=1).mean() > 0.9  # the left edge of the box: the whole frame
        tool("xdotool", "windowfocus", "--sync", window, "key", "q")
        out, err = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
            command.communicate()
    assert command.returncode == 0, err[-2000:]
    records = out.splitlines()
    summary = err.strip().splitlines()[-1]
    assert 0 < len(records) < 600 and f"{len(records)} shown in a window" in summary, summary
