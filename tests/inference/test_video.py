"""Annotated videos and timelines: ``VideoRecorder`` and ``--annotate`` on videos."""
import csv

import cv2
import numpy as np
import pytest
from commands import interrupt_after
from conftest import TINY_CLASSES, write_face_clip
from PIL import Image

from csa_keras.inference import video as video_module
from csa_keras.inference.predictor import Predictor, make_record
from csa_keras.inference.video import VideoRecorder

CLASSES = TINY_CLASSES


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Twelve 160x120 MJPG frames of synthetic faces at 10 fps."""
    return write_face_clip(tmp_path_factory.mktemp("clip") / "clip.avi", 12,
                           ("happiness", "surprise", "anger"), seed=1)


def _records(frame, faces):
    """The records of one frame with ``faces`` probability rows (none: a ``no_face`` record)."""
    if not faces:
        return [make_record("clip.avi", frame, frame / 10, status="no_face")]
    records = []
    for i, p in enumerate(faces):
        best = int(np.argmax(p))
        records.append(make_record("clip.avi", frame, frame / 10, face=i, status="ok", crop="detected",
                                   box=[10, 10, 40, 40], label=CLASSES[best], score=p[best],
                                   probabilities=dict(zip(CLASSES, p))))
    return records


def _frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _write(recorder, n):
    rows = {0: [[0.7, 0.2, 0.1]], 2: [], 3: [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]}
    for frame in range(n):
        recorder.write(np.full((60, 80, 3), 40 * frame, np.uint8), _records(frame, rows.get(frame, [[0.2, 0.3, 0.5]])))


def test_the_recorder_writes_a_video_a_timeline_and_a_plot(tmp_path):
    recorder = VideoRecorder(tmp_path / "clip", CLASSES, rate=5)
    _write(recorder, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clip_annotated.partial.mp4", ".clip_timeline.partial.csv"]
    paths = recorder.finish()
    assert [p.name for p in paths] == ["clip_annotated.mp4", "clip_timeline.csv", "clip_timeline.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    frames = _frames(paths[0])
    assert len(frames) == 5 and frames[0].shape == (60, 80, 3)
    assert [int(f.mean()) for f in frames] == pytest.approx([0, 40, 80, 120, 160], abs=3)
    capture = cv2.VideoCapture(str(paths[0]))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5)
    capture.release()
    rows = list(csv.DictReader(paths[1].open()))
    assert list(rows[0]) == ["frame", "time_s", "face", "label", "score", "p_anger", "p_happiness", "p_surprise"]
    assert [(r["frame"], r["face"], r["label"]) for r in rows] == [
        ("0", "0", "anger"), ("1", "0", "surprise"), ("2", "", ""), ("3", "0", "happiness"),
        ("3", "1", "surprise"), ("4", "0", "surprise")]
    assert [float(rows[3][f"p_{n}"]) for n in CLASSES] == [0.1, 0.6, 0.3] and rows[3]["time_s"] == "0.3"
    assert rows[2]["p_anger"] == "" and rows[2]["time_s"] == "0.2"
    width, height = Image.open(paths[2]).size
    assert width > 400 and height > 200


def test_mp4_falls_back_to_avi(tmp_path, monkeypatch):
    monkeypatch.setattr(video_module, "VIDEO_FORMATS", (("zzzz", ".mp4"), ("MJPG", ".avi")))
    recorder = VideoRecorder(tmp_path / "clip", CLASSES)
    _write(recorder, 3)
    video, *_ = recorder.finish()
    assert video.name == "clip_annotated.avi" and len(_frames(video)) == 3
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_no_format_at_all_is_an_os_error(tmp_path, monkeypatch):
    monkeypatch.setattr(video_module, "VIDEO_FORMATS", (("zzzz", ".mp4"),))
    with pytest.raises(OSError, match="cannot write the annotated video clip_annotated"):
        _write(VideoRecorder(tmp_path / "clip", CLASSES), 1)
    assert not list(tmp_path.iterdir())


def test_a_discarded_video_leaves_nothing(tmp_path):
    recorder = VideoRecorder(tmp_path / "clip", CLASSES)
    _write(recorder, 3)
    recorder.discard()
    assert not list(tmp_path.iterdir())
    assert VideoRecorder(tmp_path / "empty", CLASSES).finish() == []


def test_predict_paths_annotates_a_video_and_its_timeline(run, clip, grace_hopper, tmp_path):
    predictor = Predictor.from_run(run)
    annotate = tmp_path / "annotated"
    records = list(predictor.predict_paths([clip, grace_hopper], every=2, progress=False, annotate=annotate))
    assert sorted(p.name for p in annotate.iterdir()) == [
        "clip_annotated.mp4", "clip_timeline.csv", "clip_timeline.png", "grace_hopper_annotated.jpg"]
    frames = _frames(annotate / "clip_annotated.mp4")
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    capture = cv2.VideoCapture(str(annotate / "clip_annotated.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5)
    capture.release()
    original = _frames(clip)[0]
    band = np.abs(frames[0][:14, :70].astype(int) - original[:14, :70]).mean()
    assert band > 30, "the label band is drawn on the frame"
    rows = list(csv.DictReader((annotate / "clip_timeline.csv").open()))
    video_records = [r for r in records if r["source"] == str(clip)]
    assert [int(r["frame"]) for r in rows] == [r["frame"] for r in video_records] == [0, 2, 4, 6, 8, 10]
    for row, record in zip(rows, video_records):
        assert row["label"] == record["label"] and float(row["time_s"]) == record["time_s"]
        assert [float(row[f"p_{n}"]) for n in CLASSES] == pytest.approx(
            [record["probabilities"][n] for n in CLASSES], abs=1e-6)


def test_an_interrupted_video_keeps_its_whole_frames(run, clip, tmp_path, monkeypatch):
    predictor = Predictor.from_run(run, batch_size=2)
    interrupt_after(monkeypatch, predictor, 2)
    annotate = tmp_path / "annotated"
    seen = []
    with pytest.raises(KeyboardInterrupt):
        seen.extend(r["frame"] for r in predictor.predict_paths(clip, progress=False, annotate=annotate))
    assert seen == [0, 1, 2, 3]
    assert sorted(p.name for p in annotate.iterdir()) == ["clip_annotated.mp4", "clip_timeline.csv",
                                                         "clip_timeline.png"]
    assert len(_frames(annotate / "clip_annotated.mp4")) == 4
    assert [int(r["frame"]) for r in csv.DictReader((annotate / "clip_timeline.csv").open())] == seen
