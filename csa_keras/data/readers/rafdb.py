"""Reader for RAF-DB basic emotions (format ``rafdb``; VRN paper §4.1).

Layout: ``basic/EmoLabel/list_patition_label.txt`` (the release's spelling)
lists ``train_00001.jpg 5`` per image, with codes 1 surprise, 2 fear,
3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral; the name's prefix
gives the predefined split (12,271 train, 3,068 test). Images are
``basic/Image/aligned/train_00001_aligned.jpg`` (100x100 aligned colour face
crops, the default) or ``basic/Image/original/train_00001.jpg`` (full colour
photographs, which need face detection), chosen by ``variant``.
"""
from __future__ import annotations

import os
from pathlib import Path

from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.readers.folder import checked, require_folder
from csa_keras.data.readers.rows import LineTooLong, is_undecodable, lines, open_text

RAF_CODES = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happiness",
    5: "sadness", 6: "anger", 7: "neutral",
}

LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")
VARIANTS = ("aligned", "original")


def find_rafdb_labels(root: str | Path) -> tuple[Path, Path] | None:
    """``(basic folder, label list)`` for ``root`` being the folder holding ``basic/`` or ``basic/`` itself."""
    root = Path(root)
    for basic in (root / "basic", root):
        for name in LABEL_FILES:
            candidate = basic / "EmoLabel" / name
            if candidate.exists() and not candidate.is_dir():
                return basic, candidate
    return None


def _image_name(name: str, variant: str) -> str:
    if variant == "original":
        return name
    stem, ext = os.path.splitext(name)
    return f"{stem}_aligned{ext}"


def _label_lines(handle, label_file: Path):
    """``(number, line)`` of each line of the label list, 1-based; a line too long is a one-line error naming it."""
    number = 0
    reader = lines(handle)
    while True:
        number += 1
        try:
            line = next(reader)
        except StopIteration:
            return
        except LineTooLong as error:
            raise ValueError(f"cannot read {label_file}: line {number}: {error}") from None
        yield number, line


def read_rafdb(root: str | Path, variant: str = "aligned") -> Catalogue:
    """Read RAF-DB basic: one sample per line of the label list whose image exists.

    Skips: ``bad_encoding`` (a line holding bytes that are not UTF-8),
    ``bad_row`` (a line that is not ``NAME CODE``), ``unknown_label``
    (code outside 1-7), ``unknown_split`` (a name not starting with
    ``train_`` or ``test_``) and ``missing_image``. The aligned images are
    face crops (no detection); the originals need detection. A label list
    that is a special file, or a line of it over a mebibyte, is a one-line
    ``ValueError`` naming it (and the line).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}. Received: variant={variant!r}")
    root_path = require_folder(root)
    found = find_rafdb_labels(root_path)
    if found is None:
        raise ValueError(f"{root_path} has no basic/EmoLabel/{LABEL_FILES[0]} (format rafdb)")
    basic, label_file = found
    image_dir = basic / "Image" / variant
    existing = set(os.listdir(image_dir)) if image_dir.is_dir() else set()
    skipped = SkipLog()
    samples: list[Sample] = []
    try:
        with open_text(label_file) as handle:
            rows = list(_label_lines(handle, label_file))
    except OSError as err:
        raise ValueError(f"cannot read {label_file}: {err}") from None
    for number, line in rows:
        parts = line.split()
        if not parts:
            continue
        where = f"{label_file}:{number}"
        if is_undecodable(parts):
            skipped.add("bad_encoding", where)
            continue
        if len(parts) != 2:
            skipped.add("bad_row", where)
            continue
        name, code = parts
        try:
            label = RAF_CODES.get(int(code))
        except ValueError:
            label = None
        if label is None:
            skipped.add("unknown_label", where)
            continue
        split = name.split("_", 1)[0].lower()
        if split not in ("train", "test") or "_" not in name:
            skipped.add("unknown_split", where)
            continue
        image_name = _image_name(name, variant)
        if image_name not in existing:
            skipped.add("missing_image", str(image_dir / image_name))
            continue
        samples.append(Sample(source=str(image_dir / image_name), label=label, split=split))
    samples.sort(key=lambda s: s.source)
    hint = "" if image_dir.is_dir() else f"{image_dir} does not exist (see the variant option)"
    return checked(Catalogue(format="rafdb", root=str(root), samples=samples, skipped=skipped,
                             needs_detection=variant == "original", colour=True), hint=hint)
