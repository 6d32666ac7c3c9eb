"""The images an exported model is checked on: the run's own test images, else built-in faces.

A run directory's ``config.json`` records the settings every run shares
(the data, the protocol, the seed) and a summary of the dataset it loaded;
:func:`run_test_set` loads the dataset again as the run did, checks it
against that summary, and takes the first split's test images and labels
(the notebooks show a run's models on them, export checks its artifacts on
them).
:func:`synthetic_images` is the fallback where the data cannot be re-created.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.data.dataset import FaceDataset
from csa_keras.data.protocols import dedupe, make_splits
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.training.config import RunConfig
from csa_keras.training.experiment import load_data
from csa_keras.training.pipeline import as_channels
from csa_keras.utils.files import read_json


def _run_config(settings: dict[str, Any]) -> RunConfig:
    """The settings every run shares (data, protocol, seed), as a :class:`RunConfig`."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kept = {k: v for k, v in settings.items() if k in fields}
    kept["reader_options"] = tuple(tuple(pair) for pair in kept.get("reader_options") or ())
    return RunConfig(**kept)


def split_indices(split: dict[str, Any], part: str, n_images: int, where: str) -> np.ndarray:
    """The ``part`` indices of a recorded split, checked against the ``n_images`` of the data.

    A split read back is input: its indices must be whole numbers within the
    data, each once, and a test image must not be a training image, or
    the images it names are not the run's (a ``ValueError`` naming ``where``).
    """
    values = split[part]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise ValueError(f"{where} must list {part} images by index. Received: a value that is not a "
                         "whole number")
    indices = np.asarray(values, dtype=np.int64)
    outside = indices[(indices < 0) | (indices >= n_images)]
    if outside.size:
        raise ValueError(f"{where} must index the {n_images} images of the data. Received: {part} "
                         f"index {int(outside[0])}")
    if len(np.unique(indices)) != len(indices):
        raise ValueError(f"{where} must list each {part} image once. Received: "
                         f"{len(indices) - len(np.unique(indices))} repeated")
    other = "train" if part == "test" else "test"
    if isinstance(split.get(other), list):
        shared = np.intersect1d(indices, np.asarray([i for i in split[other] if isinstance(i, int)],
                                                   dtype=np.int64))
        if shared.size:
            raise ValueError(f"{where} must keep test images out of training. Received: {shared.size} "
                             f"images in both, the first {int(shared[0])}")
    return indices


def _first_split(run: Path, body: dict[str, Any], config: RunConfig, dataset,
                 part: str = "test") -> tuple[str, np.ndarray]:
    """The name and ``part`` (``train``, ``val`` or ``test``) indices of the run's first split: from
    ``splits.json``, else the protocol.

    A run that recorded no ``splits.json`` gets its protocol re-applied with
    its seed; the splitters are deterministic.
    """
    splits_path = run / "splits.json"
    if splits_path.is_file():
        splits = read_json(splits_path)
        if not isinstance(splits, dict) or not splits:
            raise ValueError(f"{splits_path} must map each split to its images. Received: a JSON "
                             f"{type(splits).__name__}{' with no split' if isinstance(splits, dict) else ''}")
        name, split = next(iter(splits.items()))
        if not isinstance(split, dict) or not isinstance(split.get(part), list):
            raise ValueError(f"split {name!r} of {splits_path} records no {part} images")
        return name, split_indices(split, part, len(dataset), f"split {name!r} of {splits_path}")
    protocol = body.get("run", {}).get("protocol_used", config.protocol)
    first = make_splits(dataset, protocol, folds=config.folds, seed=config.seed,
                        val_fraction=config.val_fraction,
                        val_per_class=body.get("config", {}).get("val_per_class"),
                        test_size=config.test_size)[0]
    if config.dedupe and part == "test":
        first, _ = dedupe(first, dataset.images)
    values = getattr(first, part)
    if values is None:
        raise ValueError(f"split {first.name!r} of the run's protocol has no {part} images")
    return first.name, np.asarray(values, dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class RunTestSet:
    """A run's test images re-created (:func:`run_test_set`): ``[0, 1]`` float32 images, their
    labels, the dataset's class names and a description of where they came from."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str


def run_split(run_dir: str | os.PathLike, input_shape: tuple[int, int, int],
              part: str = "test") -> tuple[FaceDataset, str]:
    """The dataset of a run re-created from its ``config.json`` and narrowed to the ``part``
    (``train``, ``val`` or ``test``) images of its first split, and where they come from
    (``"split 'predefined' of the run's dataset (fer2013)"``).

    The dataset is loaded as the run loaded it (the same reader settings, or
    the built-in data with the same seed and size), checked against the
    dataset summary the run recorded, and indexed by the first split of
    ``splits.json``; its faces are as the reader stores them (``uint8``),
    grey or colour as ``input_shape`` asks. Raises ``ValueError`` when the data
    cannot be re-created.
    """
    run = Path(run_dir)
    path = run / "config.json"
    if not path.is_file():
        raise ValueError(f"{run} holds no config.json")
    body = read_json(path)
    if not isinstance(body, dict):
        raise ValueError(f"{path} must hold a JSON object. Received: a JSON {type(body).__name__}")
    recorded = body.get("run", {}).get("dataset", {})
    config = _run_config(body.get("config", {}))
    if config.data is not None and not os.path.exists(config.data):
        raise ValueError(f"its dataset {config.data} is not there")
    dataset = load_data(config, progress=False, colour=input_shape[-1] == 3)
    shape = dataset.images.shape[1:3]
    if tuple(shape) != tuple(input_shape[:2]):
        raise ValueError(f"its dataset re-creates {shape[0]}x{shape[1]} images, "
                         f"the model takes {input_shape[0]}x{input_shape[1]}")
    if recorded and (recorded.get("n_images") != len(dataset)
                     or list(recorded.get("image_shape", [])[:2]) != list(shape)):
        raise ValueError(f"config.json re-creates {len(dataset)} images of "
                         f"{list(dataset.images.shape[1:])}, the run recorded "
                         f"{recorded.get('n_images')} of {recorded.get('image_shape')}")
    name, indices = _first_split(run, body, config, dataset, part)
    if len(indices) == 0 or indices.min() < 0 or indices.max() >= len(dataset):
        raise ValueError(f"its recorded {part} indices do not fit the re-created dataset")
    return dataset.subset(indices), f"split {name!r} of the run's dataset ({dataset.name})"


def run_test_set(run_dir: str | os.PathLike, input_shape: tuple[int, int, int],
                 max_images: int | None = None, part: str = "test") -> RunTestSet:
    """The first split's test images of a run and their labels, re-created from its ``config.json``
    (:func:`run_split`).

    Images are ``[0, 1]`` float32 with ``input_shape``'s channels; at most
    ``max_images`` are kept (``None`` or 0: all). ``part="train"`` gives the
    training images instead (the calibration faces of an int8 export).
    Raises ``ValueError`` when the data cannot be re-created.
    """
    subset, source = run_split(run_dir, input_shape, part)
    n = min(max_images or len(subset), len(subset))
    x = as_channels(subset.images[:n], input_shape[-1])
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return RunTestSet(x, np.asarray(subset.labels)[:n], list(subset.class_names),
                      f"{n} {part} images of {source}")


def run_test_images(run_dir: str | os.PathLike, input_shape: tuple[int, int, int],
                    max_images: int | None = None) -> tuple[np.ndarray, str]:
    """:func:`run_test_set`'s images and description, without the labels."""
    test = run_test_set(run_dir, input_shape, max_images)
    return test.images, test.source


def synthetic_images(input_shape: tuple[int, int, int], n: int) -> np.ndarray:
    """``n`` built-in synthetic faces of the model's input shape, as [0, 1] float32."""
    size, channels = int(input_shape[0]), int(input_shape[-1])
    subjects = max(1, math.ceil(n / 7))
    faces = make_synthetic_dataset(seed=0, n_subjects=subjects, images_per_class=1, size=size,
                                   colour=channels == 3)
    return faces.scaled()[:n]
