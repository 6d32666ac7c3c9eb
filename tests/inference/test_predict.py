"""Prediction on photographs, folders and videos: ``Predictor`` and ``python -m csa_keras.predict``."""
import csv
import json
import subprocess
import sys
import time
import tracemalloc
import zipfile

import cv2
import numpy as np
import pytest
from commands import call_main
from PIL import Image

from csa_keras.data.faces import OUTCOMES, FaceDetector, FaceSettings, crop_face, locate_faces, preprocess_image
from csa_keras.inference.archive import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH
from csa_keras.inference.loading import load_model
from csa_keras.inference.predictor import RECORD_KEYS, Predictor
from csa_keras.predict import main

PROG = "python -m csa_keras.predict"
VRN_CLASSES = ["happiness", "neutral", "surprise"]


@pytest.fixture(scope="module")
def csa_run(tmp_path_factory):
    """A real run directory of the CSA smoke preset (classifier.keras, metrics.json, config.json)."""
    from csa_keras.csa.config import preset
    from csa_keras.csa.training import run_csa

    out = tmp_path_factory.mktemp("csa") / "run"
    metrics = run_csa(preset("smoke").replace(gradcam=False), output=out, verbose=0, log=lambda _: None)
    return out, metrics["class_names"]


@pytest.fixture(scope="module")
def csa(csa_run):
    return Predictor.from_run(csa_run[0])


@pytest.fixture(scope="module")
def vrn_run(tmp_path_factory):
    """An untrained Voting ResNet (split after module 3) saved like a run directory."""
    from voting_resnet.models import build_voting_resnet

    out = tmp_path_factory.mktemp("vrn")
    build_voting_resnet(len(VRN_CLASSES), split_after=3).save(out / "model.keras")
    (out / "metrics.json").write_text(json.dumps({"task": "voting_resnet", "class_names": VRN_CLASSES}))
    return out


@pytest.fixture(scope="module")
def hopper_bgr(grace_hopper):
    return cv2.imread(str(grace_hopper))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, grace_hopper):
    """A good photograph, a truncated JPEG, a face-less frame, and a file that is not an image."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    root.mkdir()
    data = grace_hopper.read_bytes()
    (root / "a_hopper.jpg").write_bytes(data)
    (root / "b_corrupt.jpg").write_bytes(data[: len(data) // 3])
    cv2.imwrite(str(root / "c_blank.png"), np.full((300, 400, 3), 128, np.uint8))
    (root / "notes.txt").write_text("not an input")
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory, hopper_bgr):
    """Seven MJPG frames of the photograph, mirrored on odd frames, at 10 fps."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    height, width = hopper_bgr.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    assert writer.isOpened()
    for i in range(7):
        writer.write(hopper_bgr if i % 2 == 0 else cv2.flip(hopper_bgr, 1))
    writer.release()
    return path


def _probability_sum(record):
    return sum(record["probabilities"].values())


def run_main(argv, capsys):
    """``main(argv)`` in this process: exit status, stdout, stderr."""
    return call_main(main, argv, capsys)


# ----------------------------------------------------------------------------- Predictor


def test_one_face_in_a_real_photograph(csa, csa_run, grace_hopper):
    records = csa.predict(grace_hopper)
    assert len(records) == 1
    record = records[0]
    assert list(record) == list(RECORD_KEYS)
    assert record["status"] == "ok" and record["crop"] == "detected" and record["face"] == 0
    width, height = Image.open(grace_hopper).size
    x, y, w, h = record["box"]
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and min(w, h) >= 100
    assert list(record["probabilities"]) == csa_run[1] == csa.class_names
    assert _probability_sum(record) == pytest.approx(1.0, abs=1e-6)
    assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)
    assert record["score"] == record["probabilities"][record["label"]]


def test_the_face_is_preprocessed_as_in_training(csa, grace_hopper):
    rgb = np.asarray(Image.open(grace_hopper).convert("RGB"))
    face, status = preprocess_image(rgb, FaceSettings())
    assert status == "detected"
    box = FaceDetector().largest(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    record = csa.predict(rgb)[0]
    assert record["source"] == "<array>" and record["box"] == list(box)
    np.testing.assert_allclose(csa.classify(face[None])[0], list(record["probabilities"].values()),
                               rtol=1e-5, atol=1e-7)


def test_every_face_of_a_frame_is_located_as_training_locates_the_largest(csa, hopper_bgr):
    hopper = cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2RGB)
    frame = np.full((480, 640, 3), 90, np.uint8)
    big = cv2.resize(hopper, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    small = cv2.resize(hopper, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    frame[:big.shape[0], :big.shape[1]] = big
    frame[200:200 + small.shape[0], 400:400 + small.shape[1]] = small
    outcome, boxes = locate_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), csa.settings, every=True)
    records = csa.predict(frame)
    assert outcome == "detected" and len(boxes) == 2
    assert [(r["face"], r["crop"], r["box"]) for r in records] == [(0, "detected", list(boxes[0])),
                                                                   (1, "detected", list(boxes[1]))]
    assert {r["crop"] for r in records} <= set(OUTCOMES)
    face, outcome, box = crop_face(frame, csa.settings)
    assert outcome == "detected" and list(box) == records[0]["box"]
    np.testing.assert_allclose(csa.classify(face[None])[0], list(records[0]["probabilities"].values()),
                               rtol=1e-5, atol=1e-7)


def test_a_face_crop_is_taken_whole_and_the_center_box_on_request(csa, hopper_bgr):
    crop = cv2.resize(hopper_bgr[105:327, 155:377], (64, 64), interpolation=cv2.INTER_AREA)
    record = csa.predict(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))[0]
    assert record["crop"] == "whole" and record["box"] == [0, 0, 64, 64]
    blank = np.full((300, 400, 3), 128, np.uint8)
    assert [r["status"] for r in csa.predict(blank)] == ["no_face"]
    centre = Predictor(csa.model, csa.class_names, no_face="center").predict(blank)
    assert centre[0]["crop"] == "center" and centre[0]["box"] == [50, 0, 300, 300]
    with pytest.raises(ValueError, match="no_face must be one of skip, center, error. Received: no_face='centre'"):
        Predictor(csa.model, csa.class_names, no_face="centre")


def test_a_folder_reports_every_file(csa, folder):
    records = list(csa.predict_paths(folder, progress=False))
    assert [r["source"] for r in records] == [str(folder / n) for n in ("a_hopper.jpg", "b_corrupt.jpg", "c_blank.png")]
    good, corrupt, blank = records
    assert good["status"] == "ok" and _probability_sum(good) == pytest.approx(1.0, abs=1e-6)
    assert corrupt["status"] == "error" and "truncated" in corrupt["error"] and corrupt["label"] is None
    assert blank["status"] == "no_face" and blank["box"] is None and blank["error"] is None


def test_faces_are_batched_across_images(csa_run, folder, tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.jpg").write_bytes((folder / "a_hopper.jpg").read_bytes())
    predictor = Predictor.from_run(csa_run[0], batch_size=2)
    calls = []
    classify_batch = predictor.classify_batch
    predictor.classify_batch = lambda x: calls.append(len(x)) or classify_batch(x)
    records = list(predictor.predict_paths(tmp_path, progress=False))
    assert [r["source"] for r in records] == [str(tmp_path / f"{i}.jpg") for i in range(5)]
    assert calls == [2, 2, 1]


def test_prefetching_changes_nothing_but_the_timing(csa_run, folder, video):
    ahead = Predictor.from_run(csa_run[0], prefetch=8)
    in_turn = Predictor.from_run(csa_run[0])
    assert in_turn.prefetch == 0
    inputs = [folder, video]
    assert list(ahead.predict_paths(inputs, progress=False)) == list(in_turn.predict_paths(inputs, progress=False))


def test_a_no_face_error_of_the_prefetching_thread_reaches_the_caller(csa_run, folder):
    from csa_keras.data.faces import NoFaceError

    predictor = Predictor.from_run(csa_run[0], no_face="error", prefetch=4)
    with pytest.raises(NoFaceError, match="c_blank.png"):
        list(predictor.predict_paths(folder, progress=False))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_prefetch_must_be_a_count(csa_run, bad):
    with pytest.raises(ValueError, match="prefetch must be an integer"):
        Predictor.from_run(csa_run[0], prefetch=bad)


def test_min_face_searches_a_reduced_copy_and_finds_the_same_face(csa_run, folder, grace_hopper, capsys):
    full = Predictor.from_run(csa_run[0]).predict(grace_hopper)
    reduced = Predictor.from_run(csa_run[0], min_size=48)
    assert reduced.detector.min_size == 48
    (a,), (b,) = full, reduced.predict(grace_hopper)
    assert a["status"] == b["status"] == "ok"
    assert np.allclose(a["box"], b["box"], atol=0.1 * a["box"][2])
    code, out, _ = run_main([str(grace_hopper), "--model", str(csa_run[0]), "--min-face", "48", "--quiet"], capsys)
    assert code == 0 and json.loads(out.splitlines()[0])["box"] == b["box"]
    code, _, err = run_main([str(grace_hopper), "--model", str(csa_run[0]), "--min-face", "0"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"{PROG}: error: --min-face must be at least 1")


def test_video_frames_are_sampled(csa, video):
    records = list(csa.predict_paths([video], every=3, progress=False))
    assert [r["frame"] for r in records] == [0, 3, 6]
    assert [r["time_s"] for r in records] == pytest.approx([0.0, 0.3, 0.6])
    assert all(r["status"] == "ok" and r["source"] == str(video) for r in records)
    assert all(_probability_sum(r) == pytest.approx(1.0, abs=1e-6) for r in records)


def test_an_unreadable_video_is_an_error_record(csa, tmp_path, grace_hopper):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    records = list(csa.predict_paths([bad, grace_hopper], progress=False))
    assert [r["status"] for r in records] == ["error", "ok"]
    assert "video" in records[0]["error"]


def test_voting_resnet_prediction(vrn_run, grace_hopper):
    soft = Predictor.from_run(vrn_run)
    assert soft.task == "voting_resnet" and soft.class_names == VRN_CLASSES
    assert soft.settings.colour and soft.settings.size == 48
    hard = Predictor.from_run(vrn_run / "model.keras", voting="hard")
    for predictor in (soft, hard):
        [record] = predictor.predict(grace_hopper)
        assert record["status"] == "ok" and list(record["probabilities"]) == VRN_CLASSES
        assert _probability_sum(record) == pytest.approx(1.0, abs=1e-6)
        assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)


# ----------------------------------------------------------------------------- command line


def test_cli_jsonl_and_annotations(csa_run, folder, video, tmp_path, capsys):
    annotate = tmp_path / "annotated"
    code, out, err = run_main(["--model", csa_run[0], folder, video, "--every", "3", "--annotate", annotate], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in records] == ["ok", "error", "no_face", "ok", "ok", "ok"]
    assert err.splitlines()[-1] == ("4 faces in 4 files, 1 image with no face, 1 unreadable "
                                    f"(model {csa_run[0] / 'classifier.keras'})")
    written = sorted(p.relative_to(annotate).as_posix() for p in annotate.rglob("*") if p.is_file())
    assert written == ["clip_annotated.mp4", "clip_timeline.csv", "clip_timeline.png",
                       "photos/a_hopper_annotated.jpg", "photos/c_blank_annotated.png"]
    timeline = list(csv.DictReader((annotate / "clip_timeline.csv").open()))
    assert [int(row["frame"]) for row in timeline] == [0, 3, 6]
    assert [row["label"] for row in timeline] == [r["label"] for r in records[3:]]
    original = cv2.imread(str(folder / "a_hopper.jpg"))
    drawn = cv2.imread(str(annotate / "photos" / "a_hopper_annotated.jpg"))
    assert drawn.shape == original.shape
    x, y, _w, h = records[0]["box"]
    assert np.abs(drawn[y + h // 2, x].astype(int) - (0, 200, 0)).max() < 60


def test_cli_csv_to_a_file(csa_run, folder, tmp_path, capsys):
    target = tmp_path / "predictions.csv"
    code, out, err = run_main(["--model", csa_run[0], folder, "--output-format", "csv", "--output", target,
                               "--quiet"], capsys)
    assert code == 0, err
    assert out == "" and err == ""
    rows = list(csv.DictReader(target.open()))
    names = csa_run[1]
    assert list(rows[0])[-len(names) - 1:] == [f"p_{n}" for n in names] + ["error"]
    assert [r["status"] for r in rows] == ["ok", "error", "no_face"]
    assert sum(float(rows[0][f"p_{n}"]) for n in names) == pytest.approx(1.0, abs=1e-4)
    assert rows[0]["label"] in names and int(rows[0]["w"]) >= 100
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_voting_resnet(vrn_run, grace_hopper, capsys):
    code, out, err = run_main(["--model", vrn_run, grace_hopper, "--voting", "hard", "--quiet"], capsys)
    assert code == 0, err
    [record] = [json.loads(line) for line in out.splitlines()]
    assert list(record["probabilities"]) == VRN_CLASSES


def _bad_inputs(tmp, csa_dir, folder):
    truncated = tmp / "truncated.keras"
    truncated.write_bytes((csa_dir / "classifier.keras").read_bytes()[:5000])
    (tmp / "empty").mkdir()
    (tmp / "not_a_run").mkdir()
    return {
        "missing model": (["--model", tmp / "nothing.keras", folder], "does not exist"),
        "missing --model": (["--model", tmp / "nothing", folder],
                            "--model " + str(tmp / "nothing") + " does not exist"),
        "not a .keras file": (["--model", folder / "a_hopper.jpg", folder], "not a .keras file"),
        "truncated .keras": (["--model", truncated, folder], "truncated"),
        "not a run directory": (["--model", tmp / "not_a_run", folder], "not a run directory"),
        "autoencoder": (["--model", csa_dir / "autoencoder.keras", folder], "autoencoder"),
        "voting with a CSA model": (["--model", csa_dir, folder, "--voting", "soft"], "Voting ResNet"),
        "empty folder": (["--model", csa_dir, tmp / "empty"], "holds no image or video"),
        "missing input": (["--model", csa_dir, tmp / "nope.jpg"], "does not exist"),
        "bad --every": (["--model", csa_dir, folder, "--every", "0"], "--every"),
        "a .keras file as INPUT": ([csa_dir / "classifier.keras", folder], "is a model, not an image"),
        "a run directory as INPUT": ([folder, csa_dir], "give a model with --model"),
    }


def test_bad_input_is_one_line_and_exit_2(csa_run, folder, tmp_path, capsys):
    for name, (argv, message) in _bad_inputs(tmp_path, csa_run[0], folder).items():
        code, out, err = run_main(argv, capsys)
        assert code == 2, name
        assert out == "", name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: ") and message in lines[0], (name, err)


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "csa_keras.predict", "--model", str(tmp_path), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{PROG}: error: {tmp_path} is not a run directory: it holds no classifier.keras (CSA) "
        "or model.keras (Voting ResNet)"]


def test_the_pretrained_model_is_the_default(csa_run, folder, grace_hopper, tmp_path, monkeypatch, capsys):
    """A run folder stands in for the pretrained CSA, so the test does not depend on the shipped one."""
    from csa_keras.inference import loading

    monkeypatch.setattr(loading, "PRETRAINED", csa_run[0])
    assert Predictor.pretrained().source == str(csa_run[0] / "classifier.keras")
    forms = {
        "pretrained": [grace_hopper, folder / "c_blank.png"],
        "--model": ["--model", csa_run[0] / "classifier.keras", grace_hopper, folder / "c_blank.png"],
    }
    outputs = {}
    for name, argv in forms.items():
        code, out, err = run_main([*argv, "--quiet"], capsys)
        assert code == 0, (name, err)
        outputs[name] = [json.loads(line) for line in out.splitlines()]
        assert [r["status"] for r in outputs[name]] == ["ok", "no_face"], name
        assert list(outputs[name][0]["probabilities"]) == csa_run[1], name
    assert outputs["pretrained"] == outputs["--model"]

    monkeypatch.setattr(loading, "PRETRAINED", tmp_path / "not_installed")
    with pytest.raises(ValueError, match="no pretrained model is installed"):
        Predictor.pretrained()
    code, out, err = run_main([grace_hopper], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (f"{PROG}: error: no pretrained model is installed ({tmp_path / 'not_installed'} "
                           "does not exist): choose a model with --model")


def test_which_input_is_a_model(csa_run, vrn_run, folder, tmp_path):
    """An INPUT that is a model is refused (the model is given with --model only)."""
    from csa_keras.inference.inputs import names_a_model

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "autoencoder.keras").write_bytes(b"")
    for path in (csa_run[0], csa_run[0] / "classifier.keras", vrn_run, stopped, tmp_path / "missing.keras"):
        assert names_a_model(str(path)), path
    for path in (folder, folder / "a_hopper.jpg", tmp_path / "missing.jpg", tmp_path / "missing"):
        assert not names_a_model(str(path)), path


# ----------------------------------------------------------------------------- safe loading


def _archive(path, config_bytes=None, chunks=None):
    """A .keras zip whose config.json is ``config_bytes`` (or the ``chunks`` streamed in)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("config.json", "w", force_zip64=True) as member:
            for chunk in ([config_bytes] if chunks is None else chunks):
                member.write(chunk)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("model.weights.h5", b"")
    return path


def _one_line_refusal(path):
    """The ValueError of loading ``path``, its seconds and its peak traced memory (bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        load_model(path)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(caught.value)
    assert message and "\n" not in message
    return message, seconds, peak


def test_a_keras_file_cannot_import_a_module_of_its_choosing(tmp_path, monkeypatch, grace_hopper, capsys):
    """A layer registered as ``evil>Layer`` must not make predict import ``evil`` from the working folder."""
    marker = tmp_path / "imported"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    layer = {"module": "evil", "class_name": "Layer", "config": {"name": "evil"},
             "registered_name": "evil>Layer"}
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
              "config": {"name": "model", "layers": [layer]}}
    model = _archive(tmp_path / "evil.keras", json.dumps(config).encode())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` run from this folder would
    message, _, _ = _one_line_refusal(model)
    assert "evil>Layer" in message
    code, out, err = run_main(["--model", model, grace_hopper], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{PROG}: error: ")
    assert not marker.exists() and "evil" not in sys.modules


def test_a_huge_config_is_refused_quickly(tmp_path):
    """A gigabyte of whitespace compresses to a few MB: it is refused by size, without being read."""
    model = _archive(tmp_path / "huge.keras", chunks=(b" " * 2**24 for _ in range(64)))
    message, seconds, peak = _one_line_refusal(model)
    assert "config.json" in message and str(MAX_CONFIG_BYTES) in message
    assert seconds < 5 and peak < 64 * 2**20


def test_a_deeply_nested_config_is_refused_quickly(tmp_path):
    depth = 100_000
    model = _archive(tmp_path / "deep.keras", b"[" * depth + b"]" * depth)
    message, seconds, peak = _one_line_refusal(model)
    assert f"nested {depth} deep" in message and str(MAX_CONFIG_DEPTH) in message
    assert seconds < 5 and peak < 64 * 2**20
    nested_in_strings = {"config": {"name": "[" * depth}}
    with pytest.raises(ValueError, match="not a model config"):
        load_model(_archive(tmp_path / "strings.keras", json.dumps([nested_in_strings]).encode()))


def test_a_config_that_is_not_an_object_is_refused(tmp_path):
    message, _, _ = _one_line_refusal(_archive(tmp_path / "list.keras", b"[1, 2, 3]"))
    assert "not a model config" in message
