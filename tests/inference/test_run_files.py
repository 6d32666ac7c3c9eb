"""What a run wrote is read back as input: bounded, checked, never trusted.

The JSON files of a run directory or a model folder go through one reader
(``csa_keras.utils.files.read_json``): a file over its bound, a FIFO, bad
JSON or JSON nested too deep is one line naming the file. Class names read
back must be distinct and one per model output; a ``splits.json`` must index
the data it is read back against. The model is what ``--model`` names, never
a model file found among the inputs.
"""
import json
import os
import shutil
import time

import numpy as np
import pytest
from commands import call_main
from conftest import TINY_CLASSES

from csa_keras.evaluate import main as evaluate_main
from csa_keras.inference.loading import DEFAULT_MODEL
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.run_images import _first_split, split_indices
from csa_keras.predict import main as predict_main
from csa_keras.training.config import RunConfig
from csa_keras.utils.files import MAX_JSON_BYTES, FileTooLarge, read_json


def _one_line(code, out, err, prog):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run whose files a test may spoil."""
    return shutil.copytree(tiny_run, tmp_path / "run")


# ----------------------------------------------------------------------------- read_json


def test_read_json_refuses_a_file_over_its_bound_before_reading_it(tmp_path):
    path = tmp_path / "metrics.json"
    with path.open("wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: 3 GiB declared, nothing stored
    started = time.perf_counter()
    with pytest.raises(FileTooLarge, match=r"metrics.json must be at most 64.0 MiB .* a file of 3072.0 MiB"):
        read_json(path)
    assert time.perf_counter() - started < 1
    small = tmp_path / "small.json"
    small.write_text('{"a": [1, 2]}')
    assert read_json(small) == {"a": [1, 2]}
    with pytest.raises(FileTooLarge, match="at most 4 bytes"):
        read_json(small, limit=4)
    assert MAX_JSON_BYTES == 64 * 2**20


def test_read_json_names_the_file_for_bad_or_deep_json_and_never_opens_a_fifo(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_bytes(b'{"config": \xff}')
    with pytest.raises(ValueError, match=r"config.json must hold UTF-8 JSON"):
        read_json(bad)
    deep = tmp_path / "splits.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match=r"splits.json must hold JSON nested less deeply"):
        read_json(deep)
    fifo = tmp_path / "history.json"
    os.mkfifo(fifo)
    with pytest.raises(FileTooLarge, match="must be a regular file"):
        read_json(fifo)


def test_a_metrics_json_over_the_bound_is_one_line_naming_it_and_its_size(run_copy, tmp_path, capsys):
    with (run_copy / "metrics.json").open("r+b") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)
    image = _face(tmp_path / "face.png")
    line = _one_line(*call_main(predict_main, [image, "--model", run_copy], capsys), "python -m csa_keras.predict")
    assert f"{run_copy / 'metrics.json'} must be at most 64.0 MiB" in line
    assert f"{MAX_JSON_BYTES + 1} bytes" in line


def _face(path):
    import cv2

    cv2.imwrite(str(path), np.full((48, 48, 3), 120, np.uint8))
    return path


# ----------------------------------------------------------------------------- class names


@pytest.mark.parametrize("names, message", [
    (["anger", "anger", "surprise"], "class_names must be distinct"),
    (["anger", "happiness"], "class_names must name each of the model's 3 outputs"),
    (["anger", 3, "surprise"], "class_names must be a list of non-empty names"),
])
def test_class_names_read_back_are_checked(run_copy, names, message):
    (run_copy / "metrics.json").write_text(json.dumps({"task": "csa", "class_names": names}))
    with pytest.raises(ValueError, match=message) as caught:
        Predictor.from_run(run_copy)
    assert f"metrics.json of {run_copy / 'classifier.keras'}" in str(caught.value)


def test_duplicate_class_names_are_refused_not_scored_and_nothing_is_written(run_copy, tmp_path, capsys):
    """A model whose two outputs share a name would score every answer of either as right."""
    (run_copy / "metrics.json").write_text(json.dumps({"task": "csa",
                                                       "class_names": ["anger", "anger", "happiness"]}))
    data = tmp_path / "data"
    for name in ("anger", "happiness"):
        (data / name).mkdir(parents=True)
        for i in range(2):
            _face(data / name / f"{i}.png")
    output = tmp_path / "evaluation"
    line = _one_line(*call_main(evaluate_main, ["--model", run_copy, "--data", data, "--output", output,
                                                "--quiet"], capsys), "python -m csa_keras.evaluate")
    assert "class_names must be distinct" in line and "'anger' 2 times" in line
    assert not output.exists()


def test_predictor_arguments_with_repeated_names_are_refused(tiny_run):
    with pytest.raises(ValueError, match="class_names must be distinct"):
        Predictor.from_run(tiny_run, class_names=["a", "b", "a"])
    assert Predictor.from_run(tiny_run).class_names == TINY_CLASSES


# ----------------------------------------------------------------------------- splits


class _Data:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


@pytest.mark.parametrize("split, message", [
    ({"train": [0, 1], "test": [2, 10]}, "must index the 6 images of the data. Received: test index 10"),
    ({"train": [0, 1], "test": [-1]}, "test index -1"),
    ({"train": [0, 1], "test": [2, 2, 3]}, "must list each test image once. Received: 1 repeated"),
    ({"train": [0, 1, 2], "test": [2, 3]}, "must keep test images out of training. Received: 1 images in both"),
    ({"train": [0], "test": [1.5, 2]}, "must list test images by index"),
    ({"train": [0], "test": [True]}, "must list test images by index"),
])
def test_a_split_that_does_not_fit_the_data_is_refused(tmp_path, split, message):
    (tmp_path / "splits.json").write_text(json.dumps({"fold01": split}))
    with pytest.raises(ValueError, match=message) as caught:
        _first_split(tmp_path, {}, RunConfig(), _Data(6))
    assert "split 'fold01' of" in str(caught.value) and "splits.json" in str(caught.value)


def test_a_split_that_fits_gives_its_indices(tmp_path):
    (tmp_path / "splits.json").write_text(json.dumps({"holdout": {"train": [0, 1, 4], "test": [5, 2]}}))
    name, test = _first_split(tmp_path, {}, RunConfig(), _Data(6))
    assert name == "holdout" and test.tolist() == [5, 2] and test.dtype == np.int64
    assert split_indices({"train": [3], "test": []}, "train", 4, "x").tolist() == [3]
    (tmp_path / "splits.json").write_text("[]")
    with pytest.raises(ValueError, match="must map each split to its images. Received: a JSON list"):
        _first_split(tmp_path, {}, RunConfig(), _Data(6))


# ----------------------------------------------------------------------------- which model answers


def test_predict_never_takes_a_model_found_among_its_inputs(tiny_run, run_copy, tmp_path, capsys):
    """A classifier.keras inside an input folder is neither the model nor an input; the summary
    says which model answered."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    _face(photos / "a.png")
    _face(photos / "sub" / "b.png")
    shutil.copy(run_copy / "classifier.keras", photos / "sub" / "classifier.keras")
    (photos / "sub" / "metrics.json").write_text(json.dumps({"class_names": ["x", "y", "z"]}))
    code, out, err = call_main(predict_main, [photos, "--model", tiny_run], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted(os.path.basename(r["source"]) for r in records) == ["a.png", "b.png"]
    assert all(set(r["probabilities"]) == set(TINY_CLASSES) for r in records if r["probabilities"])
    assert err.strip().splitlines()[-1].endswith(f"(model {tiny_run / 'classifier.keras'})")
    line = _one_line(*call_main(predict_main, [photos / "sub", "--model", tiny_run], capsys),
                     "python -m csa_keras.predict")
    assert "is a model, not an image" in line


def test_predict_without_model_says_the_model_in_the_box_answered(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _face(photos / "a.png")
    shutil.copy(_face(tmp_path / "x.png"), photos / "classifier.keras")
    code, out, err = call_main(predict_main, [photos / "a.png"], capsys)
    assert code == 0, err
    assert err.strip().splitlines()[-1].endswith(f"(model {DEFAULT_MODEL})")
    assert len(out.splitlines()) == 1
