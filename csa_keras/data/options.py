"""The data's command-line options, worded once for every command that takes them.

``--data``, ``--data-format``, ``--detect`` and ``--no-face`` mean the same in training,
evaluation, prediction and ``python -m csa_keras.data summary``: the same
choices, the same help. Each command adds them with these functions rather
than its own copy, so the words cannot drift apart (docs/commands.md); the
choices are the library's own vocabularies (``FORMAT_CHOICES`` of the
readers, ``DETECT_MODES`` and ``NO_FACE_MODES`` of ``FaceSettings``).
"""
from __future__ import annotations

from csa_keras.data.faces import AUTO_DETECT_FACTOR, DETECT_MODES, NO_FACE_MODES
from csa_keras.data.readers import FORMAT_CHOICES


def add_data_arguments(group) -> None:
    """``--data`` and ``--data-format`` (the loader's settings ``data`` and ``format``)."""
    group.add_argument("--data", metavar="PATH",
                       help="the dataset: a folder or file (default: the built-in synthetic faces)")
    group.add_argument("--data-format", dest="format", default="auto", choices=FORMAT_CHOICES,
                       metavar="FORMAT",
                       help=f"the dataset's format: {', '.join(FORMAT_CHOICES)} (default auto: "
                            "recognised from the layout)")


def add_face_arguments(group, detect: str | None = "auto", no_face: str | None = "skip") -> None:
    """``--detect`` and ``--no-face``; ``detect`` and ``no_face`` are the defaults (``None``: the
    training recipe's, which are ``auto`` and ``skip`` too)."""
    group.add_argument("--detect", choices=DETECT_MODES, default=detect,
                       help=f"Viola-Jones face detection: auto (images over {AUTO_DETECT_FACTOR}x the "
                            "face size and datasets of full frames are searched, smaller images are "
                            "face crops already), always or never (default auto)")
    group.add_argument("--no-face", choices=NO_FACE_MODES, default=no_face,
                       help="an image or frame where detection finds no face: skip it (left out of "
                            "the data and counted; predict writes a no_face record for it), center "
                            "(take its centre square) or error (stop with an error) (default skip)")
