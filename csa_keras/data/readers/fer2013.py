"""Reader for ``fer2013.csv`` (format ``fer2013-csv``).

Each row holds ``emotion`` (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
5 surprise, 6 neutral), ``pixels`` (2304 space-separated integers 0-255, a
48x48 grey face crop) and ``Usage`` (``Training``, ``PublicTest``,
``PrivateTest``). The images are inline, so every :class:`Sample` carries its
``pixels`` as ``uint8`` ``(48, 48, 1)`` and its source is
``<csv path>#row=N`` with N the 1-based data row.

Split mapping: ``Training`` is ``train``. The two test sets are named by
``public_test_as``: by default ``PublicTest`` is ``test`` and
``PrivateTest`` is ``val``, which matches the Kaggle image release (whose
``test/`` folder is PublicTest) and so the ``folder`` reader on the same
data; ``public_test_as="val"`` gives the other common convention
(PublicTest for model selection, PrivateTest as the final test).
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.readers.folder import checked
from csa_keras.data.readers.rows import LineTooLong, csv_header, csv_reader, csv_rows, open_text, prefix
from csa_keras.utils.paths import special_file

FER_CODES = {
    0: "anger", 1: "disgust", 2: "fear", 3: "happiness",
    4: "sadness", 5: "surprise", 6: "neutral",
}

FILE_NAME = "fer2013.csv"
SIDE = 48
REQUIRED_COLUMNS = ("emotion", "pixels")


def find_fer2013_csv(path: str | Path) -> Path | None:
    """The CSV that ``path`` names: the file itself, ``path/fer2013.csv`` or ``path/fer2013/fer2013.csv``.

    A special file (a FIFO named ``fer2013.csv``) is returned too, so that
    the reader refuses it by name rather than say there is no CSV.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        return path
    for candidate in (path / FILE_NAME, path / "fer2013" / FILE_NAME):
        if candidate.is_file() or (candidate.exists() and special_file(candidate) is not None):
            return candidate
    return None


def read_header(path: Path) -> list[str]:
    """The lower-cased, stripped column names of a CSV file (``[]`` if unreadable or a special file)."""
    try:
        with open_text(path) as handle:
            return [h.strip().lower() for h in next(csv_reader(handle), [])]
    except (OSError, ValueError, csv.Error):
        return []


def _missing_column(csv_path: Path, column: str, header: list[str]) -> ValueError:
    """The one-line error of a CSV without ``column``: what the format expects, and how its first row starts."""
    first = ",".join(header)
    found = f"its first row starts {prefix(first)}" if first else "it is empty"
    return ValueError(f"{csv_path} has no '{column}' column: format fer2013-csv expects a header row "
                      f"emotion,pixels,Usage (Usage optional); {found}")


def _parse_pixels(text: str) -> tuple[np.ndarray | None, str | None]:
    """The 48x48x1 ``uint8`` image of a pixel string, or the reason it is unusable."""
    try:
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None, "non_numeric_pixels"
    if values.size != SIDE * SIDE:
        return None, "wrong_pixel_count"
    if values.min() < 0 or values.max() > 255:
        return None, "pixel_out_of_range"
    return values.astype(np.uint8).reshape(SIDE, SIDE, 1), None


def read_fer2013(path: str | Path, public_test_as: str = "test") -> Catalogue:
    """Read ``fer2013.csv`` (the file, or a folder holding it) into inline-pixel samples.

    A CSV without a ``Usage`` column (Kaggle's ``train.csv``) gives samples
    with no split. Missing ``emotion`` or ``pixels`` columns (a CSV without
    a header row), a special file, and a row the ``csv`` module cannot parse
    or a line over a mebibyte raise a one-line ``ValueError`` naming the
    file (and the row). Skips: ``bad_encoding`` (bytes that are not UTF-8,
    the row named), ``bad_row`` (too few fields),
    ``unknown_label`` (code outside 0-6 or not an integer),
    ``wrong_pixel_count`` (not 2304 values), ``non_numeric_pixels``,
    ``pixel_out_of_range`` (outside 0-255) and ``unknown_usage``. Rows are
    streamed; the 35,887 rows of FER2013 hold about 83 MB of pixels.
    """
    if public_test_as not in ("test", "val"):
        raise ValueError(f"public_test_as must be 'test' or 'val'. Received: public_test_as={public_test_as!r}")
    given = Path(path)
    if not given.exists():
        raise ValueError(f"{given} does not exist")
    csv_path = find_fer2013_csv(given)
    if csv_path is None:
        raise ValueError(f"{given} holds no {FILE_NAME} (format fer2013-csv)")
    usage_split = {
        "training": "train",
        "publictest": public_test_as,
        "privatetest": "val" if public_test_as == "test" else "test",
    }
    csv_name = str(csv_path)
    skipped = SkipLog()
    samples: list[Sample] = []
    try:
        with open_text(csv_path) as handle, warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            reader = csv_reader(handle)
            header = [h.strip().lower() for h in csv_header(reader, csv_name)]
            for column in REQUIRED_COLUMNS:
                if column not in header:
                    raise _missing_column(csv_path, column, header)
            emotion_col, pixels_col = header.index("emotion"), header.index("pixels")
            usage_col = header.index("usage") if "usage" in header else None
            needed = max(emotion_col, pixels_col, usage_col or 0) + 1
            for source, row in csv_rows(reader, needed, str(csv_name), skipped):
                try:
                    label = FER_CODES.get(int(row[emotion_col]))
                except ValueError:
                    label = None
                if label is None:
                    skipped.add("unknown_label", source)
                    continue
                split = None
                if usage_col is not None:
                    split = usage_split.get(row[usage_col].strip().lower())
                    if split is None:
                        skipped.add("unknown_usage", source)
                        continue
                pixels, reason = _parse_pixels(row[pixels_col])
                if reason is not None:
                    skipped.add(reason, source)
                    continue
                samples.append(Sample(source=source, label=label, split=split, pixels=pixels))
    except (OSError, csv.Error, LineTooLong) as err:
        raise ValueError(f"cannot read {csv_path}: {err}") from None
    return checked(Catalogue(format="fer2013-csv", root=str(path), samples=samples,
                             skipped=skipped, needs_detection=False, colour=False))
