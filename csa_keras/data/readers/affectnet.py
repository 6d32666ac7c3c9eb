"""Reader for AffectNet's manually annotated set (format ``affectnet``; VRN paper §4.1).

Layout: ``Manually_Annotated_file_lists/training.csv`` and ``validation.csv``
with columns ``subDirectory_filePath, face_x, face_y, face_width,
face_height, facial_landmarks, expression, valence, arousal``; images under
``Manually_Annotated_Images/<subDirectory_filePath>`` (also accepted one
level down, ``Manually_Annotated/Manually_Annotated_Images``, as the archive
unpacks). Codes: 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust,
6 anger, 7 contempt, 8 none, 9 uncertain, 10 no-face.

``classes=7`` keeps codes 0-6, ``classes=8`` adds contempt; the non-emotion
codes 8-10 are always dropped, each counted under its own reason. As in the
VRN paper, ``training.csv`` is the train split and ``validation.csv`` the
test split (AffectNet's test set is not public). The face box of each row is
kept so the loader crops by it instead of running detection.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.readers.folder import checked, require_folder
from csa_keras.data.readers.rows import csv_header, csv_reader, csv_rows, open_text

AFFECTNET_CODES = {
    0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise",
    4: "fear", 5: "disgust", 6: "anger", 7: "contempt",
}

DROP_REASONS = {7: "dropped_contempt", 8: "dropped_none", 9: "dropped_uncertain", 10: "dropped_no_face"}

LISTS_FOLDER = "Manually_Annotated_file_lists"
IMAGES_FOLDERS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
LIST_SPLITS = (("training.csv", "train"), ("validation.csv", "test"))
PATH_COLUMN = "subdirectory_filepath"
BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")
REQUIRED_COLUMNS = (PATH_COLUMN, *BOX_COLUMNS, "expression")


def _index_columns(header: list[str], csv_path: Path) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{csv_path} has no {', '.join(repr(c) for c in missing)} column "
                         f"(format affectnet expects {','.join(REQUIRED_COLUMNS)},...)")
    return {c: names.index(c) for c in REQUIRED_COLUMNS}


def read_affectnet(root: str | Path, classes: int = 7) -> Catalogue:
    """Read AffectNet's annotation lists, keeping rows whose image exists and class is kept.

    Each sample gets ``box = (face_x, face_y, face_width, face_height)``.
    Skips: ``dropped_contempt`` (code 7 with ``classes=7``),
    ``dropped_none``, ``dropped_uncertain``, ``dropped_no_face`` (codes
    8-10), ``unknown_label`` (any other code), ``bad_encoding`` (bytes that
    are not UTF-8), ``bad_row`` (too few fields, a non-numeric code or box),
    ``bad_box`` (a box without positive size) and ``missing_image``. A list
    that is a special file, or a row the ``csv`` module cannot parse, is a
    one-line ``ValueError`` naming the file and the row. Existence is checked against one listing per
    image folder, so the ~290k rows cost no stat call each.
    """
    if classes not in (7, 8):
        raise ValueError(f"classes must be 7 or 8. Received: classes={classes!r}")
    root_path = require_folder(root)
    lists_dir = root_path / LISTS_FOLDER
    if not lists_dir.is_dir():
        raise ValueError(f"{root_path} has no {LISTS_FOLDER}/ folder (format affectnet)")
    lists = [(lists_dir / name, split) for name, split in LIST_SPLITS
             if (lists_dir / name).exists() and not (lists_dir / name).is_dir()]
    if not lists:
        raise ValueError(f"{lists_dir} holds neither training.csv nor validation.csv (format affectnet)")
    images_dir = next((root_path / f for f in IMAGES_FOLDERS if (root_path / f).is_dir()),
                      root_path / IMAGES_FOLDERS[0])
    listings: dict[str, set[str]] = {}

    def exists(rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        if folder not in listings:
            directory = images_dir / folder
            try:
                listings[folder] = set(os.listdir(directory)) if directory.is_dir() else set()
            except (OSError, ValueError):
                listings[folder] = set()
        return name in listings[folder]

    skipped = SkipLog()
    samples: list[Sample] = []
    for csv_path, split in lists:
        try:
            with open_text(csv_path) as handle:
                reader = csv_reader(handle)
                columns = _index_columns(csv_header(reader, str(csv_path)), csv_path)
                needed = max(columns.values()) + 1
                for where, row in csv_rows(reader, needed, str(csv_path), skipped):
                    try:
                        code = int(row[columns["expression"]])
                        box = tuple(int(float(row[columns[c]])) for c in BOX_COLUMNS)
                    except (ValueError, OverflowError):
                        skipped.add("bad_row", where)
                        continue
                    if code in DROP_REASONS and not (code == 7 and classes == 8):
                        skipped.add(DROP_REASONS[code], where)
                        continue
                    label = AFFECTNET_CODES.get(code)
                    if label is None:
                        skipped.add("unknown_label", where)
                        continue
                    if box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
                        skipped.add("bad_box", where)
                        continue
                    rel = row[columns[PATH_COLUMN]].strip().replace("\\", "/").lstrip("/")
                    if not rel or not exists(rel):
                        skipped.add("missing_image", str(images_dir / rel))
                        continue
                    samples.append(Sample(source=str(images_dir / rel), label=label,
                                          split=split, box=box))
        except (OSError, csv.Error) as err:
            raise ValueError(f"cannot read {csv_path}: {err}") from None
    samples.sort(key=lambda s: (s.split != "train", s.source))
    hint = "" if images_dir.is_dir() else f"{images_dir} does not exist"
    return checked(Catalogue(format="affectnet", root=str(root), samples=samples, skipped=skipped,
                             needs_detection=False, colour=True), hint=hint)
