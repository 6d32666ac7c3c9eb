"""The annotated video, its timeline and the records file written as carefully as training state.

Each case runs ``python -m csa_keras.predict``'s ``main`` in this process on
a short clip with ``--annotate`` and ``--output``: a full disk (the video
writer or the timeline raising ``ENOSPC``), a folder that vanishes or turns
read-only mid-video, and Ctrl-C raised by the frame source at each frame.
A refused write is one line naming the file and exit status 1 with no file
left, partial or temporary; Ctrl-C is exit status 130 with every whole
frame kept and no empty video.
"""
import csv
import errno
import json
import shutil

import cv2
import pytest
from commands import call_main, error_line
from conftest import write_face_clip

from csa_keras.inference import predictor as predictor_module
from csa_keras.inference import video as video_module
from csa_keras.predict import main as predict_main
from csa_keras.utils.files import TextWriter

PREDICT = "python -m csa_keras.predict"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Eight 160x120 MJPG frames of synthetic faces at 10 fps."""
    return write_face_clip(tmp_path_factory.mktemp("writes_clip") / "clip.avi", 8,
                           ("happiness", "anger"), seed=2)


def _predict(tiny_run, clip, tmp_path, capsys):
    annotate, output = tmp_path / "annotated", tmp_path / "records.jsonl"
    code, out, err = call_main(predict_main, [clip, "--model", tiny_run, "--annotate", annotate,
                                              "--output", output, "--batch-size", "1", "--quiet"], capsys)
    return code, out, err, annotate, output


def _left(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def _failing_writer(monkeypatch, at_frame, before=None, error=errno.ENOSPC):
    """The video writer fails with ``error`` on frame ``at_frame`` (0-based); ``before`` runs first."""
    real_open = video_module.open_video_writer

    class Failing:
        def __init__(self, writer):
            self.writer, self.frames = writer, 0

        def write(self, canvas):
            if self.frames == at_frame:
                if before is not None:
                    before()
                if error is not None:
                    raise OSError(error, "write refused")
            self.frames += 1
            self.writer.write(canvas)

        def release(self):
            self.writer.release()

    def opened(*args):
        writer, path = real_open(*args)
        return Failing(writer), path

    monkeypatch.setattr(video_module, "open_video_writer", opened)


def _refused(code, out, err):
    return error_line(code, out, err, PREDICT, status=1)


@pytest.mark.parametrize("at_frame", [0, 3])
def test_a_full_disk_under_the_video_is_one_line_and_leaves_no_file(tiny_run, clip, tmp_path, monkeypatch,
                                                                    capsys, at_frame):
    _failing_writer(monkeypatch, at_frame)
    code, out, err, annotate, output = _predict(tiny_run, clip, tmp_path, capsys)
    line = _refused(code, out, err)
    assert str(annotate / "clip_annotated.mp4") in line and "write refused" in line
    assert _left(annotate) == []
    assert not output.exists() and _left(tmp_path) == ["annotated"]


def test_a_full_disk_under_the_timeline_is_one_line_naming_it(tiny_run, clip, tmp_path, monkeypatch, capsys):
    rows = video_module.timeline_rows
    calls = []

    def failing(records, class_names):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return rows(records, class_names)

    monkeypatch.setattr(video_module, "timeline_rows", failing)
    code, out, err, annotate, output = _predict(tiny_run, clip, tmp_path, capsys)
    line = _refused(code, out, err)
    assert line.endswith(f"{annotate / 'clip_timeline.csv'}: No space left on device")
    assert _left(annotate) == [] and not output.exists()


def test_a_folder_that_vanishes_mid_video_is_one_line(tiny_run, clip, tmp_path, monkeypatch, capsys):
    _failing_writer(monkeypatch, 2, before=lambda: shutil.rmtree(tmp_path / "annotated"), error=None)
    code, out, err, annotate, output = _predict(tiny_run, clip, tmp_path, capsys)
    line = _refused(code, out, err)
    assert str(annotate / "clip_annotated.mp4") in line and "No such file or directory" in line
    assert not annotate.exists() and not output.exists() and _left(tmp_path) == []


def test_a_folder_turned_read_only_mid_video_is_one_line(tiny_run, clip, tmp_path, monkeypatch, capsys):
    _failing_writer(monkeypatch, 2, error=errno.EROFS)
    code, out, err, annotate, output = _predict(tiny_run, clip, tmp_path, capsys)
    assert str(annotate / "clip_annotated.mp4") in _refused(code, out, err)
    assert _left(annotate) == [] and not output.exists()


@pytest.mark.parametrize("frames", [0, 1, 3, 7])
def test_ctrl_c_at_any_frame_keeps_the_whole_frames(tiny_run, clip, tmp_path, monkeypatch, capsys, frames):
    real = predictor_module.video_frames

    def interrupted(*args, **kwargs):
        source = real(*args, **kwargs)
        for _ in range(frames):
            yield next(source)
        source.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(predictor_module, "video_frames", interrupted)
    code, out, err, annotate, output = _predict(tiny_run, clip, tmp_path, capsys)
    assert code == 130 and out == "" and err.strip().splitlines() == [f"{PREDICT}: interrupted"], err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted({r["frame"] for r in records}) == list(range(frames))
    if frames == 0:
        assert _left(annotate) == []
        return
    assert _left(annotate) == ["clip_annotated.mp4", "clip_timeline.csv", "clip_timeline.png"]
    capture = cv2.VideoCapture(str(annotate / "clip_annotated.mp4"))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == frames
    timeline = list(csv.DictReader((annotate / "clip_timeline.csv").open()))
    assert sorted({int(r["frame"]) for r in timeline}) == list(range(frames))


def test_the_text_writer_names_its_file_and_leaves_none_on_a_refused_write(tmp_path):
    path = tmp_path / "records.jsonl"
    with pytest.raises(OSError) as caught, TextWriter(path) as handle:
        handle.write("{}\n")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == str(path) and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt), TextWriter(path) as handle:
        handle.write('{"a": 1}\n')
        raise KeyboardInterrupt
    assert path.read_text() == '{"a": 1}\n' and list(tmp_path.iterdir()) == [path]
