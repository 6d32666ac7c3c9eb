"""From a path on disk (or nothing) to a :class:`FaceDataset` in canonical form.

``load_dataset(path)`` reads the dataset's catalogue with the reader of its
format (:func:`csa_keras.data.readers.read_catalogue`), decodes and crops
every image with :func:`csa_keras.data.faces.preprocess_samples` (parallel,
cached) and assembles the :class:`FaceDataset` that models, protocols and
reports use: ``uint8`` faces of the settings' size, canonical class names,
subjects and predefined splits where the format has them. With no path it
returns the built-in synthetic dataset (:mod:`csa_keras.data.synthetic`), so
every command runs on a fresh machine without downloading anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from csa_keras.data.dataset import Catalogue, FaceDataset, SkipLog
from csa_keras.data.faces import FaceSettings, preprocess_samples
from csa_keras.data.readers import read_catalogue
from csa_keras.data.synthetic import make_synthetic_dataset


def _nothing_usable(root: str, skipped: SkipLog) -> ValueError:
    top = sorted(skipped.counts.items(), key=lambda item: (-item[1], item[0]))[:3]
    reasons = ", ".join(f"{reason}: {n}" for reason, n in top) or "the catalogue was empty"
    return ValueError(f"no usable images in {root} (skipped {reasons})")


def _dataset_name(root: str) -> str:
    path = Path(root).resolve()
    return path.stem if path.is_file() else path.name


def dataset_from_catalogue(
    catalogue: Catalogue,
    settings: FaceSettings = FaceSettings(),
    cache_dir: str | os.PathLike | bool | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> FaceDataset:
    """Preprocess a reader's :class:`Catalogue` into a :class:`FaceDataset`.

    Classes keep the catalogue's (canonical) order; a class left with no
    image after skips is dropped and the labels re-indexed, its name listed
    in ``info["dropped_classes"]``. ``subjects`` and ``splits`` are ``None``
    when the format has none; where only some samples have a subject, the
    others get ``"unknown"`` (so grouped splitters still work) and
    ``info["unknown_subjects"]`` counts them. ``skipped`` merges the
    reader's skips with the decoding and no-face skips. Raises a one-line
    ``ValueError`` naming the root and the main skip reasons when no image
    is usable.
    """
    samples = catalogue.samples
    skipped = SkipLog().merge(catalogue.skipped)
    if not samples:
        raise _nothing_usable(catalogue.root, skipped)
    result = preprocess_samples(
        samples, settings, needs_detection=catalogue.needs_detection,
        workers=workers, cache_dir=cache_dir, progress=progress,
    )
    skipped.merge(result.skipped)
    kept = [samples[i] for i in result.kept]
    if not kept:
        raise _nothing_usable(catalogue.root, skipped)

    present = {s.label for s in kept}
    class_names = [c for c in catalogue.class_names if c in present]
    unknown_labels = present - set(class_names)
    if unknown_labels:
        raise ValueError(f"samples of {catalogue.root} carry labels outside its class names: "
                         f"{', '.join(sorted(unknown_labels))}")
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[s.label] for s in kept], dtype=np.int64)

    subjects = None
    info: dict = {}
    if any(s.subject is not None for s in kept):
        missing = sum(s.subject is None for s in kept)
        subjects = np.array([s.subject if s.subject is not None else "unknown" for s in kept], dtype=object)
        if missing:
            info["unknown_subjects"] = missing
    splits = None
    if any(s.split is not None for s in kept):
        splits = np.array([s.split for s in kept], dtype=object)

    info.update(
        faces_detected=result.n_detected,
        no_face=result.n_no_face,
        from_cache=result.from_cache,
        needs_detection=bool(catalogue.needs_detection),
        root=str(catalogue.root),
        preprocess_seconds=round(result.seconds, 3),
        dropped_classes=[c for c in catalogue.class_names if c not in present],
        status_counts=result.status_counts,
    )
    return FaceDataset(
        images=result.images,
        labels=labels,
        class_names=class_names,
        paths=np.array([s.source for s in kept], dtype=object),
        subjects=subjects,
        splits=splits,
        name=_dataset_name(catalogue.root),
        format=catalogue.format,
        skipped=skipped,
        info=info,
    )


def _synthetic(settings: FaceSettings, seed: int, options: dict) -> FaceDataset:
    """The built-in dataset at the size and colour of ``settings``; ``options`` go to its generator."""
    try:
        dataset = make_synthetic_dataset(seed=seed, size=settings.size, colour=settings.colour, **options)
    except TypeError as error:
        raise ValueError(f"the built-in dataset does not take option(s) "
                         f"{', '.join(sorted(options))}: {error}") from None
    if dataset.images.shape[1:] != (settings.size, settings.size, settings.channels):
        dataset.images = _conform(dataset.images, settings)
    dataset.info.setdefault("from_cache", False)
    dataset.info.setdefault("faces_detected", 0)
    dataset.info.setdefault("no_face", 0)
    return dataset


def _conform(images: np.ndarray, settings: FaceSettings) -> np.ndarray:
    """Bring images to ``(size, size, C)`` of ``settings`` (channel repeat or grey, ``INTER_AREA``)."""
    out = []
    for image in images:
        if image.shape[-1] == 1 and settings.colour:
            image = np.repeat(image, 3, axis=-1)
        elif image.shape[-1] == 3 and not settings.colour:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
        if image.shape[:2] != (settings.size, settings.size):
            image = cv2.resize(image, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
            image = image.reshape(settings.size, settings.size, -1)
        out.append(image)
    return np.stack(out)


def load_dataset(
    path: str | os.PathLike | None = None,
    format: str = "auto",
    settings: FaceSettings = FaceSettings(),
    cache_dir: str | os.PathLike | bool | None = None,
    workers: int | None = None,
    progress: bool = True,
    synthetic_seed: int = 0,
    **reader_options,
) -> FaceDataset:
    """The dataset at ``path`` in canonical form, or the built-in synthetic one when ``path`` is ``None``.

    ``format`` is one of the readers' formats or ``auto`` (detected from the
    layout); ``reader_options`` go to the reader (``None`` values keep its
    defaults), or to :func:`make_synthetic_dataset` when ``path`` is
    ``None``. ``settings`` decide size, grey or colour, and the detection
    and no-face policies; ``cache_dir`` (``False`` disables), ``workers`` and
    ``progress`` go to :func:`preprocess_samples`. ``info`` of the result
    holds ``faces_detected``, ``no_face``, ``from_cache``,
    ``needs_detection`` and ``root``. Bad paths, unknown formats and data
    with nothing usable raise a one-line ``ValueError``.
    """
    if not isinstance(settings, FaceSettings):
        raise ValueError(f"settings must be a FaceSettings. Received: settings of type {type(settings).__name__}")
    options = {k: v for k, v in reader_options.items() if v is not None}
    if path is None:
        return _synthetic(settings, synthetic_seed, options)
    catalogue = read_catalogue(path, format=format, **options)
    return dataset_from_catalogue(catalogue, settings, cache_dir=cache_dir, workers=workers, progress=progress)
