"""The dataset loader (csa_keras.data.loader) and ``python -m csa_keras.data summary``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from csa_keras.data.__main__ import main
from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.faces import FaceSettings
from csa_keras.data.loader import dataset_from_catalogue, load_dataset


def _face(path: Path, value: int, size: int = 48) -> None:
    rng = np.random.default_rng(value)
    image = np.clip(rng.normal(value, 20, (size, size)), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)


@pytest.fixture()
def kaggle_folder(tmp_path) -> Path:
    """A Kaggle FER2013-style tree: train/ and test/ with class folders and a few bad files.

    Usable: train angry 3, happy 2; test angry 1, happy 2, surprise 1 (JPEG).
    Skipped: a truncated JPEG and a text file named .jpg (decoding), a
    zero-byte file that is the only image of ``sad`` (so ``sadness`` is
    dropped), a README in a class folder (reader) and an unknown class.
    """
    root = tmp_path / "fer-mini"
    layout = {("train", "angry"): 3, ("train", "happy"): 2, ("test", "angry"): 1, ("test", "happy"): 2}
    value = 10
    for (split, name), n in layout.items():
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(n):
            value += 20
            _face(folder / f"{i:05d}.png", value)
    (root / "test" / "surprise").mkdir()
    Image.fromarray(np.full((48, 48), 99, np.uint8)).save(root / "test" / "surprise" / "0.jpg", quality=95)
    data = (root / "test" / "surprise" / "0.jpg").read_bytes()
    (root / "train" / "happy" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "train" / "angry" / "notes.jpg").write_text("not an image")
    (root / "train" / "angry" / "README.txt").write_text("readme")
    (root / "train" / "sad").mkdir()
    (root / "train" / "sad" / "empty.png").write_bytes(b"")
    (root / "train" / "bored").mkdir()
    _face(root / "train" / "bored" / "0.png", 5)
    return root


def test_load_kaggle_folder(kaggle_folder, tmp_path):
    dataset = load_dataset(kaggle_folder, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert dataset.format == "folder" and dataset.name == "fer-mini"
    assert dataset.class_names == ["anger", "happiness", "surprise"]
    assert dataset.images.shape == (9, 48, 48, 1) and dataset.images.dtype == np.uint8
    assert dataset.class_counts() == {"anger": 4, "happiness": 4, "surprise": 1}
    assert dataset.skipped.as_dict() == {
        "empty_file": 1, "not_an_image_extension": 1, "truncated_image": 1,
        "unknown_class_folder": 1, "unreadable_image": 1,
    }
    assert dataset.info["dropped_classes"] == ["sadness"]
    assert dataset.info["from_cache"] is False and dataset.info["faces_detected"] == 0
    assert dataset.subjects is None
    summary = dataset.summary()
    assert summary["split_counts"] == {
        "train": {"anger": 3, "happiness": 2, "surprise": 0},
        "test": {"anger": 1, "happiness": 2, "surprise": 1},
    }
    for image, path, label in zip(dataset.images, dataset.paths, dataset.labels):
        expected = np.asarray(Image.open(path).convert("L"))
        np.testing.assert_array_equal(image[..., 0], expected)
        folder = Path(path).parent.name
        assert dataset.class_names[label] == {"angry": "anger", "happy": "happiness", "surprise": "surprise"}[folder]

    again = load_dataset(kaggle_folder, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert again.info["from_cache"] is True
    np.testing.assert_array_equal(again.images, dataset.images)
    assert again.skipped.as_dict() == dataset.skipped.as_dict()

    colour = load_dataset(kaggle_folder, settings=FaceSettings(colour=True, size=32), cache_dir=False,
                          workers=1, progress=False)
    assert colour.images.shape == (9, 32, 32, 3)


def _catalogue(tmp_path: Path) -> Catalogue:
    files = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        _face(path, 40 * (i + 1))
        files.append(str(path))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    skipped = SkipLog()
    skipped.add("unknown_label", "labels.csv#row=7")
    samples = [
        Sample(files[0], "anger", subject="S1", split="train"),
        Sample(files[1], "fear", subject="S2", split="test"),
        Sample(str(tmp_path / "broken.png"), "disgust", subject="S3", split="train"),
        Sample(files[2], "fear", subject=None, split="train"),
        Sample(files[3], "anger", subject="S1", split="test"),
    ]
    return Catalogue(format="folder", root=str(tmp_path), samples=samples, skipped=skipped)


def test_dataset_from_catalogue_reindexes_and_merges_skips(tmp_path):
    catalogue = _catalogue(tmp_path)
    assert catalogue.class_names == ["anger", "disgust", "fear"]
    dataset = dataset_from_catalogue(catalogue, workers=1, cache_dir=False, progress=False)
    assert dataset.class_names == ["anger", "fear"]
    assert dataset.labels.tolist() == [0, 1, 1, 0]
    assert dataset.subjects.tolist() == ["S1", "S2", "unknown", "S1"]
    assert dataset.info["unknown_subjects"] == 1
    assert dataset.splits.tolist() == ["train", "test", "train", "test"]
    assert dataset.skipped.as_dict() == {"unknown_label": 1, "unreadable_image": 1}
    assert dataset.skipped.examples["unreadable_image"] == [str(tmp_path / "broken.png")]
    assert dataset.info["dropped_classes"] == ["disgust"]
    assert dataset.info["root"] == str(tmp_path)
    assert dataset.paths.tolist() == [s.source for i, s in enumerate(catalogue.samples) if i != 2]
    assert catalogue.skipped.as_dict() == {"unknown_label": 1}


def test_nothing_usable_is_a_one_line_error(tmp_path):
    (tmp_path / "a.jpg").write_text("text")
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "c.jpg").write_text("text")
    catalogue = Catalogue(format="folder", root=str(tmp_path),
                          samples=[Sample(str(tmp_path / n), "anger") for n in ("a.jpg", "b.jpg", "c.jpg")])
    with pytest.raises(ValueError) as error:
        dataset_from_catalogue(catalogue, workers=1, cache_dir=False, progress=False)
    message = str(error.value)
    assert str(tmp_path) in message and "unreadable_image: 2" in message and "empty_file: 1" in message
    assert "\n" not in message
    with pytest.raises(ValueError, match="no usable images"):
        dataset_from_catalogue(Catalogue(format="folder", root="x", samples=[]), progress=False)


def test_builtin_dataset_follows_settings():
    grey = load_dataset(progress=False)
    assert grey.format == "synthetic" and grey.images.shape[1:] == (48, 48, 1)
    assert grey.subjects is not None and len(grey) > 0
    colour = load_dataset(settings=FaceSettings(colour=True, size=40), synthetic_seed=3, progress=False)
    assert colour.images.shape[1:] == (40, 40, 3) and len(colour) == len(grey)
    with pytest.raises(ValueError, match="does not take"):
        load_dataset(bogus_option=1)


def test_bad_paths_and_formats(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "missing", progress=False)
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(tmp_path, format="bogus", progress=False)


# ----------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "csa_keras.data", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_summary_cli_json(kaggle_folder, tmp_path):
    result = _cli("summary", "--data", str(kaggle_folder), "--json", "--workers", "1",
                  "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["format"] == "folder"
    assert summary["n_images"] == 9
    assert summary["class_counts"] == {"anger": 4, "happiness": 4, "surprise": 1}
    assert summary["split_counts"]["test"] == {"anger": 1, "happiness": 2, "surprise": 1}
    assert summary["n_subjects"] is None
    assert summary["skipped"]["truncated_image"] == 1 and sum(summary["skipped"].values()) == 5
    assert summary["skipped_examples"]["empty_file"] == [str(kaggle_folder / "train" / "sad" / "empty.png")]
    assert summary["faces_detected"] == 0 and summary["dropped_classes"] == ["sadness"]
    assert list((tmp_path / "c").glob("*.npz"))


def test_summary_cli_bad_path_is_one_line():
    result = _cli("summary", "--data", "/no/such/dataset")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m csa_keras.data: error:")
    assert "/no/such/dataset" in lines[0]
    assert result.stdout == ""


def test_summary_table_and_errors_in_process(kaggle_folder, capsys):
    assert main(["summary", "--data", str(kaggle_folder), "--workers", "1", "--no-cache", "--quiet"]) == 0
    out = capsys.readouterr().out
    for text in ("fer-mini", "anger", "happiness", "train", "test", "truncated_image: 1", "dropped", "sadness"):
        assert text in out
    assert main(["summary", "--data", str(kaggle_folder), "--data-format", "jaffe", "--no-cache", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("python -m csa_keras.data: error:")
    with pytest.raises(SystemExit) as code:
        main(["summary", "--detect", "sometimes"])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m csa_keras.data summary: error:") and len(err.strip().splitlines()) == 1


def test_summary_builtin_json(capsys):
    assert main(["summary", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "synthetic" and summary["n_images"] == sum(summary["class_counts"].values())
    assert summary["n_subjects"] and summary["skipped"] == {}


def test_detection_frames_through_the_loader(tmp_path, grace_hopper):
    """Frames larger than 4x the face size are searched for a face (JAFFE / CK+ style)."""
    root = tmp_path / "frames"
    (root / "happy").mkdir(parents=True)
    hopper = np.asarray(Image.open(grace_hopper).convert("RGB"))
    canvas = np.full((480, 640, 3), 80, np.uint8)
    small = cv2.resize(hopper, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas[50:50 + small.shape[0], 200:200 + small.shape[1]] = small
    Image.fromarray(canvas).save(root / "happy" / "frame.png")
    Image.fromarray(np.full((480, 640), 128, np.uint8)).save(root / "happy" / "wall.png")
    dataset = load_dataset(root, cache_dir=False, workers=1, progress=False)
    assert len(dataset) == 1 and dataset.info["faces_detected"] == 1 and dataset.info["no_face"] == 1
    assert dataset.skipped.as_dict() == {"no_face": 1}
