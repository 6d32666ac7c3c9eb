"""Reader for JAFFE (format ``jaffe``).

JAFFE is 213 grey 256x256 frames of 10 Japanese women posing the six basic
expressions and neutral, named ``XX.YYn.NNN.tiff`` (``KA.AN1.39.tiff``): XX
the subject, YY the expression (AN DI FE HA NE SA SU), n the take, NNN the
image number. Files lie flat in the root or one folder down (``ROOT/jaffe/``).
The frames include background, so the catalogue asks for face detection;
some are palette TIFFs, which the loader reads as grey.
"""
from __future__ import annotations

import re
from pathlib import Path

from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.readers.folder import checked, not_an_image, require_folder, sorted_entries

JAFFE_CODES = {
    "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happiness",
    "NE": "neutral", "SA": "sadness", "SU": "surprise",
}

JAFFE_NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)


def parse_jaffe_name(name: str) -> tuple[str, str] | None:
    """``(subject, expression code)`` of a JAFFE file name, or ``None`` if it does not parse."""
    match = JAFFE_NAME.match(name)
    if match is None:
        return None
    return match.group(1).upper(), match.group(2).upper()


def jaffe_files(root: str | Path) -> list[Path]:
    """Every non-hidden entry that is not a folder in ``root`` and its immediate subfolders, sorted.

    Special files are listed too, so that the reader counts them.
    """
    root = Path(root)
    files = []
    for entry in sorted_entries(root):
        if entry.is_dir():
            files.extend(root / entry.name / e.name for e in sorted_entries(entry.path) if not e.is_dir())
        else:
            files.append(root / entry.name)
    return files


def read_jaffe(root: str | Path) -> Catalogue:
    """Read JAFFE file names into samples with subject ids (the ``XX`` prefix).

    Skips: ``unparsable_name`` (an image whose name is not ``XX.YYn.NNN.tiff``),
    ``unknown_label`` (an expression code outside AN DI FE HA NE SA SU) and
    ``not_an_image_extension`` (other files, such as the release's README)
    and ``not_a_regular_file`` (a FIFO, device or socket with an image name,
    found with ``os.stat``, never opened).
    """
    root_path = require_folder(root)
    skipped = SkipLog()
    samples: list[Sample] = []
    for file in jaffe_files(root_path):
        reason = not_an_image(file)
        if reason is not None:
            skipped.add(reason, str(file))
            continue
        parsed = parse_jaffe_name(file.name)
        if parsed is None:
            skipped.add("unparsable_name", str(file))
            continue
        subject, code = parsed
        label = JAFFE_CODES.get(code)
        if label is None:
            skipped.add("unknown_label", str(file))
            continue
        samples.append(Sample(source=str(file), label=label, subject=subject))
    return checked(Catalogue(format="jaffe", root=str(root), samples=samples, skipped=skipped,
                             needs_detection=True, colour=False))
