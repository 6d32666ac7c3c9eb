"""The canonical form of a loaded dataset and what readers hand over.

A reader turns a dataset on disk into a :class:`Catalogue`: one :class:`Sample`
per usable image (its source, canonical label, subject, split, optional face
box) plus a :class:`SkipLog` of what it could not use and why. The loader then
decodes and crops every sample into a :class:`FaceDataset`, the form every
model, protocol and report works with: ``uint8`` images ``(N, 48, 48, C)``,
integer labels into ``class_names``, optional subjects and predefined splits,
and the source of every image.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

CANONICAL_CLASSES = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

_ALIASES = {
    "anger": "anger", "angry": "anger", "an": "anger",
    "contempt": "contempt", "co": "contempt",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "fe": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness", "ha": "happiness",
    "neutral": "neutral", "neutrality": "neutral", "calm": "neutral", "ne": "neutral",
    "sadness": "sadness", "sad": "sadness", "sa": "sadness",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
}

SPLITS = ("train", "val", "test")


def canonical_class(name: str) -> str | None:
    """Map a dataset's class name (``angry``, ``Happy``, ``SU``) to the canonical one.

    Returns ``None`` for a name outside the vocabulary, so the caller can count
    it as a skip rather than fail.
    """
    return _ALIASES.get(str(name).strip().lower())


def ordered_classes(names: Iterable[str]) -> list[str]:
    """The canonical classes present in ``names``, in the fixed canonical order."""
    present = set(names)
    return [c for c in CANONICAL_CLASSES if c in present]


class SkipLog:
    """Counts of skipped inputs by reason, with the first few sources of each.

    Nothing is dropped silently: every reader and preprocessing step records
    here, and the summary and every run report print it.
    """

    max_examples = 5

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, source: str = "", n: int = 1) -> None:
        self.counts[reason] += n
        examples = self.examples.setdefault(reason, [])
        if source and len(examples) < self.max_examples:
            examples.append(str(source))

    def merge(self, other: SkipLog) -> SkipLog:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            examples = self.examples.setdefault(reason, [])
            for source in other.examples.get(reason, []):
                if len(examples) < self.max_examples:
                    examples.append(source)
        return self

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def describe(self) -> list[str]:
        """One human-readable line per reason, with example sources."""
        return [
            f"{reason}: {n}" + (f" (e.g. {', '.join(self.examples.get(reason, []))})"
                                if self.examples.get(reason) else "")
            for reason, n in sorted(self.counts.items())
        ]

    def __bool__(self) -> bool:
        return bool(self.counts)

    def __repr__(self) -> str:
        return f"SkipLog({self.as_dict()})"


@dataclasses.dataclass
class Sample:
    """One labelled image as a reader found it, before decoding.

    ``source`` is a file path, or ``file#row=N`` for images stored inline
    (``fer2013.csv``), in which case ``pixels`` holds the decoded array.
    ``box`` is a face box ``(x, y, w, h)`` given by the dataset (AffectNet).
    """

    source: str
    label: str
    subject: str | None = None
    split: str | None = None
    sequence: str | None = None
    box: tuple[int, int, int, int] | None = None
    pixels: np.ndarray | None = None


@dataclasses.dataclass
class Catalogue:
    """What a reader found: samples, skips, and how its images must be treated.

    ``needs_detection`` is True for formats of full frames (original CK+,
    JAFFE), where ``--detect auto`` runs Viola-Jones; face crops (CK+48,
    FER2013, RAF-DB aligned) skip it. ``colour`` says whether the source
    images carry colour.
    """

    format: str
    root: str
    samples: list[Sample]
    skipped: SkipLog = dataclasses.field(default_factory=SkipLog)
    needs_detection: bool = False
    colour: bool = False
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.class_names is None:
            self.class_names = ordered_classes(s.label for s in self.samples)


@dataclasses.dataclass
class FaceDataset:
    """A loaded dataset in canonical form.

    ``images`` are ``uint8`` ``(N, H, W, C)``; :meth:`scaled` gives the
    ``float32`` [0, 1] arrays the models take. ``subjects`` and ``splits``
    are object arrays of strings, or ``None`` where the format has none.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: np.ndarray
    subjects: np.ndarray | None = None
    splits: np.ndarray | None = None
    name: str = "dataset"
    format: str = "unknown"
    skipped: SkipLog = dataclasses.field(default_factory=SkipLog)
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.paths = np.asarray(self.paths, dtype=object)
        n = len(self.images)
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C). Received: images with shape {self.images.shape}")
        for field in ("labels", "paths", "subjects", "splits"):
            value = getattr(self, field)
            if value is not None and len(value) != n:
                raise ValueError(f"{field} has {len(value)} entries for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError("labels must index class_names")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    def scaled(self) -> np.ndarray:
        """Images as ``float32`` in [0, 1], the form the models take."""
        if self.images.dtype == np.uint8:
            return self.images.astype(np.float32) / 255.0
        return self.images.astype(np.float32)

    def subset(self, index: Sequence[int] | np.ndarray) -> FaceDataset:
        index = np.asarray(index, dtype=np.int64)
        return dataclasses.replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            paths=self.paths[index],
            subjects=None if self.subjects is None else self.subjects[index],
            splits=None if self.splits is None else self.splits[index],
        )

    def class_counts(self, index: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if index is None else self.labels[index]
        counts = np.bincount(labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def summary(self) -> dict:
        """The JSON object of ``python -m csa_keras.data summary``."""
        split_counts = {}
        if self.splits is not None:
            for split in [s for s in SPLITS if s in set(self.splits)]:
                split_counts[split] = self.class_counts(np.flatnonzero(self.splits == split))
        return {
            "format": self.format,
            "name": self.name,
            "n_images": len(self),
            "image_shape": list(self.images.shape[1:]),
            "class_names": list(self.class_names),
            "class_counts": self.class_counts(),
            "split_counts": split_counts,
            "n_subjects": None if self.subjects is None else len(set(self.subjects)),
            "skipped": self.skipped.as_dict(),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, type(None)))},
        }
