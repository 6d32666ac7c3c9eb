"""FIFOs among prediction inputs: an ``error`` record each, never opened, never a hang.

The FIFOs are watched (``fifos.watched_fifos``), so a regression that opens
one is released with an end of file and fails the test; the command runs
in a fresh interpreter under a timeout.
"""
import json

from commands import run_module
from fifos import watched_fifos

from csa_keras.inference.predictor import Predictor

FIFO_ERROR = "not a regular file (a FIFO)"


def test_fifos_named_to_the_command_are_error_records(tiny_run, grace_hopper, tmp_path):
    photo, clip = tmp_path / "photo.jpg", tmp_path / "clip.mp4"
    with watched_fifos(photo, clip) as opened:
        result = run_module("csa_keras.predict", "--model", tiny_run, photo, clip, grace_hopper, timeout=300)
    assert not opened.is_set()
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["source"], r["status"], r["error"]) for r in records[:2]] == [
        (str(photo), "error", FIFO_ERROR), (str(clip), "error", FIFO_ERROR)]
    assert records[2]["source"] == str(grace_hopper) and records[2]["status"] == "ok"
    assert result.stderr.strip().splitlines()[-1].endswith(
        f", 2 unreadable (model {tiny_run / 'classifier.keras'})")


def test_fifos_in_a_folder_are_error_records(tiny_run, grace_hopper, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "b.jpg").write_bytes(grace_hopper.read_bytes())
    predictor = Predictor.from_run(tiny_run)
    with watched_fifos(folder / "a.mp4", folder / "c.png") as opened:
        records = list(predictor.predict_paths(folder, progress=True, annotate=tmp_path / "annotated"))
        single = predictor.predict(folder / "c.png")
    assert not opened.is_set()
    assert [(r["source"], r["status"]) for r in records] == [
        (str(folder / "a.mp4"), "error"), (str(folder / "b.jpg"), "ok"), (str(folder / "c.png"), "error")]
    assert records[0]["error"] == records[2]["error"] == FIFO_ERROR
    assert [r["error"] for r in single] == [FIFO_ERROR]


def test_a_fifo_given_as_the_model_is_one_line(grace_hopper, tmp_path):
    model = tmp_path / "classifier.keras"
    with watched_fifos(model) as opened:
        result = run_module("csa_keras.predict", "--model", model, grace_hopper, timeout=120)
    assert not opened.is_set()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"python -m csa_keras.predict: error: --model {model} is a FIFO, not a regular file"]
