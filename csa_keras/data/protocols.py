"""Evaluation protocols: holdout, subject k-fold, predefined splits.

Every protocol returns a list of :class:`Split` (one for ``holdout`` and
``predefined``, k for ``subject-kfold``) holding indices into the dataset.
:func:`make_splits` also carves a stratified validation set out of each
training part, so training code can checkpoint on validation without ever
looking at the test images.

- ``holdout``: a stratified random 80/20 split with a seed, the CSA paper's
  protocol (§4.1). On CK+ it leaks identity and near-identical frames across
  train and test (:data:`LEAK_NOTE`).
- ``subject-kfold``: stratified k-fold grouped by subject
  (:class:`sklearn.model_selection.StratifiedGroupKFold`): no subject is ever
  on both sides of a fold. The honest CK+ protocol.
- ``predefined``: the dataset's own train / val / test membership (FER2013,
  RAF-DB, AffectNet). Without a ``val`` split, validation is carved from
  train as the VRN paper does (§4.1): 10% stratified for RAF-DB
  (``val_fraction``), 500 per class for AffectNet (``val_per_class``).

Exact duplicate images shared by train and test (FER2013 holds hundreds) are
found by hashing image bytes (:func:`find_duplicates`), counted
(:func:`duplicate_report`) and, with ``--dedupe``, dropped from test
(:func:`dedupe`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import numpy as np

from csa_keras.data.dataset import FaceDataset

PROTOCOLS = ("holdout", "subject-kfold", "predefined")

LEAK_NOTE = (
    "Holdout leaks on this dataset: its images come in sequences of the same "
    "subject (CK+ keeps the last frames of every sequence), and those frames are "
    "near duplicates of one another. A random image-level split puts frames of one "
    "sequence, and faces of one person, on both sides, so the test set measures "
    "recognition of people and frames already seen in training rather than of "
    "expressions on new faces, and its accuracy is optimistic. This is the CSA "
    "paper's protocol and is kept for comparison; subject-kfold (stratified k-fold "
    "grouped by subject, no person in both train and test) is the honest protocol."
)
"""One paragraph for the run report when holdout is used on a dataset with subjects."""


def holdout_leaks(protocol: str, dataset: FaceDataset) -> bool:
    """Whether ``protocol`` on ``dataset`` puts faces of one person on both sides (:data:`LEAK_NOTE`).

    A holdout split of real data whose images come several to a subject does;
    the built-in synthetic faces are drawn independently for every image (no
    sequence, no near-duplicate frames), so the note does not apply to them.
    """
    return (protocol == "holdout" and dataset.subjects is not None
            and dataset.format != "synthetic")


@dataclasses.dataclass(frozen=True)
class Split:
    """One train / test partition, as index arrays into a dataset.

    ``val`` is carved from the training part (never from test); ``None`` or an
    empty array means no validation set. ``name`` is ``"holdout"``,
    ``"fold1"`` ... ``"foldk"`` or ``"predefined"``.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray | None = None

    @property
    def n_val(self) -> int:
        return 0 if self.val is None else len(self.val)


def _index(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _class_name(label: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return f"{class_names[label]!r}"
    return f"label {label}"


def holdout(labels, test_size: float = 0.2, seed: int = 0,
            class_names: Sequence[str] | None = None) -> list[Split]:
    """The CSA paper's protocol: one stratified random train/test split (§4.1).

    ``sklearn.model_selection.train_test_split(stratify=labels)``; the test
    part has ``ceil(test_size * N)`` images. Raises ``ValueError`` naming the
    class when a class has fewer than 2 images, or when either side would hold
    fewer images than there are classes (stratification is impossible then).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"holdout test_size must be between 0 and 1. Received: test_size={test_size!r}")
    classes, counts = np.unique(labels, return_counts=True)
    if (counts < 2).any():
        first = int(np.argmax(counts < 2))
        raise ValueError(f"holdout cannot stratify: class {_class_name(int(classes[first]), class_names)} "
                         f"has {int(counts[first])} image (every class needs at least 2)")
    n_test = math.ceil(test_size * len(labels))
    if n_test < len(classes) or len(labels) - n_test < len(classes):
        raise ValueError(f"holdout cannot stratify {len(labels)} images of {len(classes)} classes "
                         f"with test_size={test_size}: {n_test} test and {len(labels) - n_test} "
                         f"train images, each side needs at least one image per class")
    from sklearn.model_selection import train_test_split  # on use: scikit-learn's import is 0.1 s of prediction's start

    train, test = train_test_split(np.arange(len(labels)), test_size=n_test, stratify=labels,
                                   random_state=seed)
    return [Split("holdout", np.sort(train), np.sort(test))]


def subject_kfold(labels, subjects, k: int = 10, seed: int = 0) -> list[Split]:
    """Stratified k-fold grouped by subject: the honest protocol for CK+.

    ``StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)``:
    every image is in exactly one test fold and no subject is on both sides
    of any fold. ``k`` must lie in [2, number of subjects].
    """
    if subjects is None:
        raise ValueError("subject-kfold needs subject ids; this dataset has none")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    subjects = np.asarray(subjects, dtype=object).reshape(-1)
    if len(subjects) != len(labels):
        raise ValueError(f"subject-kfold needs one subject id per label. Received: {len(subjects)} subject ids "
                         f"for {len(labels)} labels")
    missing = [i for i, s in enumerate(subjects) if s is None or str(s) == ""]
    if missing:
        raise ValueError(f"subject-kfold needs a subject id for every image; {len(missing)} have none "
                         f"(first at index {missing[0]})")
    n_subjects = len(set(subjects.tolist()))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2 or k > n_subjects:
        raise ValueError(f"subject-kfold needs 2 <= k <= number of subjects. Received: k={k} "
                         f"with {n_subjects} subjects")
    groups = np.unique(subjects.astype(str), return_inverse=True)[1]
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=int(k), shuffle=True, random_state=seed)
    splits = []
    for i, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups), start=1):
        if len(test) == 0:
            raise ValueError(f"subject-kfold with k={k} left fold {i} without test images; use a smaller k")
        splits.append(Split(f"fold{i}", np.sort(train), np.sort(test)))
    return splits


def carve_validation(train_idx, labels, fraction: float = 0.1, seed: int = 0,
                     per_class: int | None = None,
                     class_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a training part into ``(train, val)``, stratified by class.

    ``per_class=N`` takes N random images of every class (the VRN paper's
    AffectNet recipe, 500 per class); a class with N or fewer training images
    is a ``ValueError`` (it would leave none to train on). Otherwise a
    stratified ``fraction`` (RAF-DB: 10%) through ``train_test_split``;
    ``fraction=0`` gives an empty validation set. On tiny training parts,
    where ``ceil(fraction * n)`` is smaller than the number of classes,
    validation takes one image of each class instead; classes with a single
    training image always stay in train. Both returned arrays are sorted.
    """
    train_idx = _index(train_idx)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    empty = np.empty(0, dtype=np.int64)
    if per_class is not None:
        if isinstance(per_class, bool) or int(per_class) < 1:
            raise ValueError(f"val_per_class must be a positive integer. Received: val_per_class={per_class!r}")
        rng = np.random.default_rng(seed)
        val = []
        train_labels = labels[train_idx]
        for label in np.unique(train_labels):
            members = train_idx[train_labels == label]
            if len(members) <= per_class:
                raise ValueError(f"val_per_class={per_class} needs more than {per_class} training images "
                                 f"per class; class {_class_name(int(label), class_names)} has {len(members)}")
            val.append(rng.choice(members, size=int(per_class), replace=False))
        val = np.sort(np.concatenate(val)) if val else empty
        return np.setdiff1d(train_idx, val), val
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1). Received: val_fraction={fraction!r}")
    if fraction == 0.0 or len(train_idx) == 0:
        return np.sort(train_idx), empty
    train_labels = labels[train_idx]
    _classes, inverse, counts = np.unique(train_labels, return_inverse=True, return_counts=True)
    eligible = counts[inverse] >= 2
    pool = train_idx[eligible]
    n_classes = int((counts >= 2).sum())
    if n_classes == 0:
        return np.sort(train_idx), empty
    n_val = max(math.ceil(fraction * len(train_idx)), n_classes)
    n_val = min(n_val, len(pool) - n_classes)
    from sklearn.model_selection import train_test_split

    rest, val = train_test_split(pool, test_size=n_val, stratify=labels[pool], random_state=seed)
    train = np.concatenate([rest, train_idx[~eligible]])
    return np.sort(train), np.sort(val)


def predefined(splits, labels, seed: int = 0, val_fraction: float = 0.1,
               val_per_class: int | None = None,
               class_names: Sequence[str] | None = None) -> list[Split]:
    """The dataset's own split (FER2013, RAF-DB, AffectNet), as one :class:`Split`.

    ``splits`` holds ``"train"``, ``"val"`` or ``"test"`` per image. A
    ``val`` split is used as it is; without one, validation is carved from
    train by :func:`carve_validation` (``val_per_class`` or
    ``val_fraction``). Raises ``ValueError`` when there are no split labels,
    no ``train`` or no ``test`` images, or an unknown split name.
    """
    if splits is None:
        raise ValueError("the predefined protocol needs the dataset's own train/test split; this dataset has none")
    membership = np.asarray(splits, dtype=object).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(membership) != len(labels):
        raise ValueError(f"predefined needs one split label per image. Received: {len(membership)} split labels "
                         f"for {len(labels)} images")
    names = np.asarray([str(s) for s in membership])
    unknown = sorted(set(names.tolist()) - {"train", "val", "test"})
    if unknown:
        raise ValueError(f"unknown split name(s) {', '.join(map(repr, unknown))}: expected train, val or test")
    test = np.flatnonzero(names == "test")
    train = np.flatnonzero(names == "train")
    if len(test) == 0:
        raise ValueError("the dataset's predefined split has no test images")
    if len(train) == 0:
        raise ValueError("the dataset's predefined split has no train images")
    val = np.flatnonzero(names == "val")
    if len(val) == 0:
        train, val = carve_validation(train, labels, fraction=val_fraction, seed=seed,
                                      per_class=val_per_class, class_names=class_names)
    return [Split("predefined", train, test, val)]


def make_splits(dataset: FaceDataset, protocol: str, folds: int = 10, seed: int = 0,
                val_fraction: float = 0.1, val_per_class: int | None = None,
                test_size: float = 0.2) -> list[Split]:
    """The splits of ``protocol`` (one of :data:`PROTOCOLS`) for ``dataset``.

    Every returned split has a validation set carved from its own training
    part (stratified ``val_fraction``, or ``val_per_class`` per class), except
    that a predefined ``val`` split is kept as the dataset gives it. ``folds``
    is k of ``subject-kfold``; ``test_size`` is the test fraction of
    ``holdout``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    labels, names = dataset.labels, dataset.class_names
    if protocol == "predefined":
        return predefined(dataset.splits, labels, seed=seed, val_fraction=val_fraction,
                          val_per_class=val_per_class, class_names=names)
    if protocol == "holdout":
        base = holdout(labels, test_size=test_size, seed=seed, class_names=names)
    else:
        base = subject_kfold(labels, dataset.subjects, k=folds, seed=seed)
    result = []
    for split in base:
        train, val = carve_validation(split.train, labels, fraction=val_fraction, seed=seed,
                                      per_class=val_per_class, class_names=names)
        result.append(dataclasses.replace(split, train=train, val=val))
    return result


def _digests(images: np.ndarray, index: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(np.ascontiguousarray(images[i]).data, digest_size=16).digest() for i in index]


def _development(split: Split) -> np.ndarray:
    if split.val is None:
        return _index(split.train)
    return np.concatenate([_index(split.train), _index(split.val)])


def find_duplicates(images: np.ndarray, train_idx, test_idx) -> np.ndarray:
    """Indices (into ``images``) of the test images whose bytes equal some train image.

    Each image is hashed with BLAKE2b (128-bit digest) over its raw bytes, and
    a digest match is confirmed by comparing the arrays, so the result is
    exact. Linear in the number of images (35k FER2013 images take well under
    a second). Returned sorted.
    """
    images = np.asarray(images)
    train_idx, test_idx = _index(train_idx), _index(test_idx)
    seen: dict[bytes, int] = {}
    for i, digest in zip(train_idx, _digests(images, train_idx)):
        seen.setdefault(digest, int(i))
    hits = [int(j) for j, digest in zip(test_idx, _digests(images, test_idx))
            if digest in seen and np.array_equal(images[j], images[seen[digest]])]
    return np.asarray(sorted(hits), dtype=np.int64)


def dedupe(split: Split, images: np.ndarray) -> tuple[Split, int]:
    """Drop from test every image that exactly duplicates a train or val image.

    Validation counts as training data here: it steers checkpointing, so a
    test image equal to a validation image leaks too. Returns the new split
    and the number of test images removed.
    """
    duplicates = find_duplicates(images, _development(split), split.test)
    test = np.setdiff1d(_index(split.test), duplicates)
    return dataclasses.replace(split, test=test), len(duplicates)


def _repeats(images: np.ndarray, index: np.ndarray) -> int:
    digests = _digests(images, index)
    return len(digests) - len(set(digests))


def duplicate_report(images: np.ndarray, split: Split) -> dict:
    """Counts of exact duplicate images in a split, for the run report.

    ``test_in_train``: test images equal to a train or val image (what
    ``--dedupe`` removes), with its fraction of the test set;
    ``within_train`` and ``within_test``: surplus copies inside each side
    (images minus distinct images; train includes val).
    """
    images = np.asarray(images)
    development = _development(split)
    test = _index(split.test)
    leaked = find_duplicates(images, development, test)
    return {
        "n_train": len(_index(split.train)),
        "n_val": split.n_val,
        "n_test": len(test),
        "test_in_train": len(leaked),
        "test_in_train_fraction": float(len(leaked) / len(test)) if len(test) else 0.0,
        "within_train": _repeats(images, development),
        "within_test": _repeats(images, test),
    }
