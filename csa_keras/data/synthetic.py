"""The built-in synthetic expression dataset: every command runs without a download.

Faces are drawn by :mod:`csa_keras.data.face_painter`, one identity per subject
and one random pose, lighting and intensity per image. Every image has its
own ``numpy.random.Generator`` derived from ``(seed, subject, class,
repeat)`` through :class:`numpy.random.SeedSequence` spawn keys, so an image
does not depend on which other classes or subjects were asked for, nor on
call order.

The expressive regions (brows, eyes, nose bridge, mouth) are drawn into a
mask under the same pose transform as the face. ``make_synthetic_dataset(...,
return_masks=True)`` returns them beside the dataset, and
:func:`expression_regions` re-renders them for any synthetic dataset or subset
from its paths; the Grad-CAM checks use them to ask whether a model looks
where the expression is.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from csa_keras.data.dataset import CANONICAL_CLASSES, FaceDataset, canonical_class, ordered_classes
from csa_keras.data.face_painter import Identity, draw_face, random_face

DEFAULT_CLASSES: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)
"""The seven classes of CK+ (the CSA paper's dataset)."""

PATH_PREFIX = "synthetic://"
_PATH_RE = re.compile(r"^synthetic://seed(\d+)/synth_S(\d+)/([a-z]+)/(\d+)$")
_IDENTITY_STREAM = 0
_IMAGE_STREAM = 1

__all__ = ["DEFAULT_CLASSES", "PATH_PREFIX", "draw_face", "expression_regions",
           "make_synthetic_dataset"]


def _image_rng(seed: int, subject: int, class_name: str, repeat: int) -> np.random.Generator:
    key = (_IMAGE_STREAM, subject, CANONICAL_CLASSES.index(class_name), repeat)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _identity(seed: int, subject: int) -> Identity:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_IDENTITY_STREAM, subject)))
    return Identity.random(rng)


def _resolve_classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str):
        classes = [classes]
    names = []
    for name in classes:
        canonical = canonical_class(name)
        if canonical is None:
            raise ValueError(f"unknown class {name!r}: choose from {', '.join(CANONICAL_CLASSES)}")
        if canonical in names:
            raise ValueError(f"class {name!r} is given twice")
        names.append(canonical)
    if len(names) < 2:
        raise ValueError(f"classes must name at least 2 classes. Received: classes={names!r}")
    return ordered_classes(names)


def _subject_id(number: int, n_subjects: int) -> str:
    return f"synth_S{number:0{max(3, len(str(n_subjects)))}d}"


MAX_SYNTHETIC_PIXELS = 2**30
"""The most pixel values the built-in faces may hold, images times height times width times channels:
1 GiB as ``uint8``, and four times that once scaled to ``float32`` for a model. They exist to test the
code; the default is 840 faces of 48x48 (1.9 M values), and 2**30 is 466,000 of them."""


def make_synthetic_dataset(
    seed: int = 0,
    n_subjects: int = 40,
    images_per_class: int = 3,
    classes: Sequence[str] = DEFAULT_CLASSES,
    size: int = 48,
    colour: bool = False,
    return_masks: bool = False,
):
    """The built-in dataset: every subject shows every class ``images_per_class`` times.

    The default (40 subjects x 7 CK+ classes x 3) gives 840 grey 48x48
    images, enough for the ``quick`` demo to learn something real in minutes
    on a CPU and small enough to generate in well under a second. ``classes``
    is any subset of the canonical eight (aliases accepted), ordered
    canonically. ``colour=True`` gives 3 channels tinted per subject.

    Returns a :class:`FaceDataset` with subjects ``synth_S001``... and paths
    ``synthetic://seed<seed>/<subject>/<class>/<repeat>``; with
    ``return_masks=True``, ``(dataset, masks)`` where ``masks`` is ``bool``
    ``(N, size, size)``: the expressive regions of each image (see
    :func:`expression_regions`). Same arguments, same bytes.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1. Received: n_subjects={n_subjects!r}")
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be at least 1. Received: images_per_class={images_per_class!r}")
    names = _resolve_classes(classes)
    if size < 1:
        raise ValueError(f"size must be at least 1. Received: size={size!r}")
    pixels = n_subjects * images_per_class * len(names) * size * size * (3 if colour else 1)
    if pixels > MAX_SYNTHETIC_PIXELS:
        raise ValueError(f"n_subjects={n_subjects} x images_per_class={images_per_class} x "
                         f"{len(names)} classes of {size}x{size} faces make {pixels} pixel values, more "
                         f"than the {MAX_SYNTHETIC_PIXELS} the built-in faces may hold")
    seed = int(seed)
    n = n_subjects * len(names) * images_per_class
    images = np.empty((n, size, size), np.uint8)
    masks = np.empty((n, size, size), bool)
    labels = np.empty(n, np.int64)
    subjects, paths, tints = [], [], np.empty((n, 3), np.float32)
    i = 0
    for s in range(1, n_subjects + 1):
        identity = _identity(seed, s)
        subject = _subject_id(s, n_subjects)
        for label, name in enumerate(names):
            for r in range(images_per_class):
                images[i], masks[i] = random_face(_image_rng(seed, s, name, r), identity, name, size)
                labels[i] = label
                tints[i] = identity.tint
                subjects.append(subject)
                paths.append(f"{PATH_PREFIX}seed{seed}/{subject}/{name}/{r}")
                i += 1
    if colour:
        data = np.clip(np.round(images[..., None] * tints[:, None, None, :]), 0, 255).astype(np.uint8)
    else:
        data = images[..., None]
    dataset = FaceDataset(
        images=data,
        labels=labels,
        class_names=names,
        paths=np.asarray(paths, dtype=object),
        subjects=np.asarray(subjects, dtype=object),
        splits=None,
        name="synthetic",
        format="synthetic",
        info={"seed": seed, "n_subjects": n_subjects, "images_per_class": images_per_class,
              "size": size, "colour": bool(colour)},
    )
    return (dataset, masks) if return_masks else dataset


def expression_regions(dataset_or_paths: FaceDataset | Sequence[str], size: int | None = None) -> np.ndarray:
    """The expressive-region masks of synthetic images, re-rendered from their paths.

    Works on a whole synthetic dataset, any subset of one, or a list of its
    paths (``synthetic://seed0/synth_S001/anger/0``); every image is drawn
    again from its own seed, so the masks match the images exactly. Returns
    ``bool`` ``(N, size, size)`` (``size`` defaults to the dataset's image
    side, or 48 for bare paths). Raises ``ValueError`` for a path that is not
    synthetic.
    """
    if isinstance(dataset_or_paths, FaceDataset):
        paths = list(dataset_or_paths.paths)
        size = size or int(dataset_or_paths.images.shape[1])
    else:
        paths = [dataset_or_paths] if isinstance(dataset_or_paths, str) else list(dataset_or_paths)
        size = size or 48
    masks = np.empty((len(paths), size, size), bool)
    for i, path in enumerate(paths):
        match = _PATH_RE.match(str(path))
        if match is None or match.group(3) not in CANONICAL_CLASSES:
            raise ValueError(f"{path!r} is not a synthetic image path (synthetic://seed<N>/synth_S<N>/<class>/<N>)")
        seed, subject, name, repeat = int(match.group(1)), int(match.group(2)), match.group(3), int(match.group(4))
        _, masks[i] = random_face(_image_rng(seed, subject, name, repeat), _identity(seed, subject), name, size)
    return masks
