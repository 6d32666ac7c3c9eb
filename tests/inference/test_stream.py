"""Live prediction: ``Predictor.stream`` and ``python -m csa_keras.predict --stream / --camera``."""
import csv
import json

import cv2
import numpy as np
import pytest
from commands import call_main, interrupt_after
from conftest import TINY_CLASSES, write_face_clip

from csa_keras.inference.predictor import RECORD_KEYS, Predictor
from csa_keras.inference.stream import Smoother, source_name, source_stem
from csa_keras.predict import main

PROG = "python -m csa_keras.predict"
CLASSES = TINY_CLASSES
EXPRESSIONS = ("anger", "happiness", "surprise", "neutral")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def predictor(run):
    return Predictor.from_run(run)


def write_clip(path, frames=20, fps=10.0):
    """A video of synthetic faces, a different one every frame."""
    return write_face_clip(path, frames, EXPRESSIONS, seed=0, fps=fps)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi")


def run_main(argv, capsys):
    return call_main(main, argv, capsys)


def _raw(frame):
    return np.array([frame.records[0]["probabilities"][name] for name in CLASSES])


# ----------------------------------------------------------------------------- library


def test_smoothed_probabilities_are_the_mean_of_the_last_k_frames(predictor, clip):
    stream = predictor.stream(clip, smooth=3)
    frames = list(stream)
    assert [f.frame for f in frames] == list(range(20))
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(20)])
    assert not stream.capture.isOpened()
    raw = np.stack([_raw(f) for f in frames])
    assert np.ptp(raw, axis=0).max() > 1e-4, "the frames should not all score alike"
    for t, frame in enumerate(frames):
        [record] = frame.records
        assert list(record) == list(RECORD_KEYS)
        assert record["status"] == "ok" and record["crop"] == "whole" and record["box"] == [0, 0, 160, 120]
        assert record["source"] == str(clip) and record["frame"] == t
        smoothed = np.array([frame.probabilities[0][name] for name in CLASSES])
        np.testing.assert_allclose(smoothed, raw[max(0, t - 2):t + 1].mean(axis=0), rtol=1e-12)
        [shown] = frame.smoothed
        assert shown["probabilities"] == frame.probabilities[0]
        assert shown["label"] == CLASSES[int(np.argmax(smoothed))] and shown["score"] == smoothed.max()
        assert frame.fps > 0
    assert frames[0].records[0]["probabilities"] == frames[0].probabilities[0]


def test_max_frames_and_every(predictor, clip):
    stream = predictor.stream(clip, smooth=1, every=3, max_frames=4)
    frames = list(stream)
    assert [f.frame for f in frames] == [0, 3, 6, 9] and stream.frames == 4
    assert all(f.probabilities[0] == f.records[0]["probabilities"] for f in frames)
    assert not stream.capture.isOpened()


def test_the_smoother_matches_faces_by_index():
    smoother = Smoother(2)
    a, b, c, d = (np.array(v, dtype=float) for v in ([1, 0], [0, 1], [0.5, 0.5], [0.2, 0.8]))
    assert [s.tolist() for s in smoother.update([a, b])] == [[1, 0], [0, 1]]
    [first] = smoother.update([c])
    assert first.tolist() == [0.75, 0.25]
    first, second = smoother.update([None, d])
    assert first is None and second.tolist() == [0.2, 0.8]  # face 1 was absent from the frame before
    assert smoother.update([a])[0].tolist() == [1, 0]  # only the last two frames count; face 0 was absent


def test_ctrl_c_releases_the_capture_and_finishes_the_video(predictor, clip, tmp_path, monkeypatch):
    stream = predictor.stream(clip, annotate=tmp_path / "out")
    interrupt_after(monkeypatch, predictor, 4)
    seen = []
    with pytest.raises(KeyboardInterrupt):
        seen.extend(f.frame for f in stream)
    assert seen == [0, 1, 2, 3] and not stream.capture.isOpened()
    video = cv2.VideoCapture(str(tmp_path / "out" / "clip_annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    video.release()
    rows = list(csv.DictReader((tmp_path / "out" / "clip_timeline.csv").open()))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2, 3]
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_bad_sources_and_settings_are_one_line_errors(predictor, tmp_path):
    cases = [
        (dict(source=tmp_path / "missing.avi"), "cannot be opened"),
        (dict(source=tmp_path / "missing.avi", smooth=0), "smooth must be a positive integer. Received: smooth=0"),
        (dict(source=0, max_frames=0), "max_frames must be a positive integer. Received: max_frames=0"),
        (dict(source=1.5), "source must be a camera index, a video file or a stream URL"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError) as caught:
            predictor.stream(**options)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_sources_are_named_for_records_and_files():
    assert source_name(0) == "<camera 0>" and source_stem(2) == "camera2"
    assert source_stem("videos/clip.avi") == "clip"
    assert source_stem("rtsp://10.0.0.5:554/live/cam.sdp?user=x") == "cam"
    assert source_stem("http://example.org/") == "example.org"


def test_a_stream_names_its_annotated_files_by_the_source_stem(predictor, clip, tmp_path):
    dotted = tmp_path / "my.clip.avi"
    dotted.write_bytes(clip.read_bytes())
    frames = list(predictor.stream(dotted, max_frames=3, annotate=tmp_path / "out"))
    assert frames[0].records[0]["source"] == str(dotted)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "my.clip_annotated.mp4", "my.clip_timeline.csv", "my.clip_timeline.png"]


# ----------------------------------------------------------------------------- command line


def test_cli_stream_writes_the_smoothed_records(run, predictor, clip, tmp_path, capsys):
    target = tmp_path / "live.csv"
    code, out, err = run_main(["--model", run, "--stream", clip, "--smooth", "4", "--max-frames", "8",
                               "--output-format", "csv", "--output", target], capsys)
    assert code == 0, err
    assert out == "" and "8 faces in 8 frames" in err.splitlines()[-1] and "frames per second" in err
    rows = list(csv.DictReader(target.open()))
    expected = list(predictor.stream(clip, smooth=4, max_frames=8))
    assert [int(r["frame"]) for r in rows] == list(range(8))
    for row, frame in zip(rows, expected):
        smoothed = frame.probabilities[0]
        assert row["label"] == max(smoothed, key=smoothed.get)
        assert [float(row[f"p_{n}"]) for n in CLASSES] == pytest.approx([smoothed[n] for n in CLASSES], abs=1e-6)


def test_cli_ctrl_c_exits_130_with_complete_output(run, clip, tmp_path, monkeypatch, capsys):
    classify = Predictor.classify
    calls = []

    def interrupted(self, faces):
        calls.append(len(faces))
        if len(calls) > 5:
            raise KeyboardInterrupt
        return classify(self, faces)

    monkeypatch.setattr(Predictor, "classify", interrupted)
    target, annotate = tmp_path / "live.jsonl", tmp_path / "annotated"
    code, out, err = run_main(["--model", run, "--stream", clip, "--output", target, "--annotate", annotate],
                              capsys)
    assert code == 130 and out == ""
    lines = err.splitlines()
    assert lines[-1] == f"{PROG}: interrupted" and lines[-2].startswith("5 faces in 5 frames, ")
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for r in records)
    assert sorted(p.name for p in annotate.iterdir()) == ["clip_annotated.mp4", "clip_timeline.csv",
                                                          "clip_timeline.png"]
    assert not list(tmp_path.rglob(".*partial*"))


def test_cli_live_arguments_are_checked(run, clip, grace_hopper, tmp_path, capsys):
    cases = {
        "input with a camera": (["--model", run, "--camera", "0", grace_hopper], "--camera takes no INPUT"),
        "camera and stream": (["--model", run, "--camera", "0", "--stream", clip], "not allowed with"),
        "smooth 0": (["--model", run, "--stream", clip, "--smooth", "0"],
                     "--smooth must be at least 1. Received: --smooth=0"),
        "smooth on files": (["--model", run, grace_hopper, "--smooth", "3"], "--smooth applies to"),
        "missing stream": (["--model", run, "--stream", tmp_path / "nope.avi"], "is not a video file or a stream URL"),
        "no input": (["--model", run], "no INPUT given"),
        "negative camera": (["--model", run, "--camera", "-1"], "--camera must be at least 0"),
    }
    for name, (argv, message) in cases.items():
        code, out, err = run_main(argv, capsys)
        assert code == 2 and out == "", name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: ") and message in lines[0], (name, err)
