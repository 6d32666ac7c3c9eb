"""Reader for the original CK+ release (format ``ckplus``; CSA paper §4).

Layout: ``cohn-kanade-images/S###/###/S###_###_########.png`` holds every
frame of each posed sequence, from neutral onset to expression peak, and
``Emotion/S###/###/S###_###_########_emotion.txt`` holds the validated
emotion code of the 327 labelled sequences as a float such as
``   3.0000000e+00`` (0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear,
5 happy, 6 sadness, 7 surprise). The last ``last_frames`` frames of each
labelled sequence (the peak) carry its label: the default 3 gives CK+48's
327 x 3 = 981 images; ``last_frames=4`` (``--reader-option last_frames=4``)
gives the CSA paper's 327 x 4 = 1,308 (§4.1: 276 happy, 180 anger, 112 sad,
332 surprise, 72 contempt, 236 disgust, 100 fear). ``first_as_neutral``
adds each sequence's first frame as neutral (the paper also lists 327
neutral images, one per sequence, though its results cover the seven
emotions only). Frames are 640x490 full frames, so the catalogue asks for
face detection.

Both folders may sit in the root or one level down (``ROOT/CK+/...``,
``ROOT/Emotion_labels/Emotion``), as the release archives unpack them.
"""
from __future__ import annotations

from pathlib import Path

from csa_keras.data.dataset import Catalogue, Sample, SkipLog
from csa_keras.data.readers.folder import checked, not_an_image, require_folder, sorted_entries
from csa_keras.utils.paths import special_file

EMOTION_CODES = {
    0: "neutral", 1: "anger", 2: "contempt", 3: "disgust",
    4: "fear", 5: "happiness", 6: "sadness", 7: "surprise",
}

EMOTION_FILE_CHARS = 256
"""The most read of an emotion file, which holds one number such as ``   3.0000000e+00``."""

IMAGES_FOLDER = "cohn-kanade-images"
EMOTION_FOLDER = "Emotion"


def _find(root: Path, name: str) -> Path | None:
    if (root / name).is_dir():
        return root / name
    for entry in sorted_entries(root):
        if entry.is_dir() and (root / entry.name / name).is_dir():
            return root / entry.name / name
    return None


def find_ckplus_folders(root: str | Path) -> tuple[Path, Path] | None:
    """``(cohn-kanade-images, Emotion)`` under ``root`` or one level down, or ``None``."""
    root = Path(root)
    if not root.is_dir():
        return None
    images, emotion = _find(root, IMAGES_FOLDER), _find(root, EMOTION_FOLDER)
    if images is None or emotion is None:
        return None
    return images, emotion


def _subfolders(folder: Path) -> list[str]:
    return [e.name for e in sorted_entries(folder) if e.is_dir()] if folder.is_dir() else []


def parse_emotion_code(text: str) -> str | None:
    """The canonical label of an ``_emotion.txt`` content, or ``None`` if it is not a code 0-7."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not value.is_integer():
        return None
    return EMOTION_CODES.get(int(value))


def read_emotion_file(path: Path) -> str | None:
    """The label in an ``_emotion.txt`` file (its first :data:`EMOTION_FILE_CHARS` characters), ``None`` if none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_emotion_code(handle.read(EMOTION_FILE_CHARS))
    except OSError:
        return None


def read_ckplus(root: str | Path, last_frames: int = 3, first_as_neutral: bool = False) -> Catalogue:
    """Read the original CK+ release: the last ``last_frames`` frames of each labelled sequence.

    ``last_frames`` 3 (the default) is CK+48's reading, 4 the CSA paper's.

    Subjects are ``S###``, sequences ``S###_###``. Skips: sequences without
    an emotion file (``unlabelled_sequence``; CK+ has 593 sequences of which
    327 are labelled), emotion files whose content is not a code 0-7
    (``unknown_label``), sequences with more than one emotion file
    (``ambiguous_label``), labelled sequences without frames
    (``missing_image``), non-image files among the frames
    (``not_an_image_extension``), and frames or emotion files that are
    FIFOs, devices or sockets (``not_a_regular_file``, found with
    ``os.stat``, never opened). With ``first_as_neutral`` the first frame
    is added as neutral only when it is not already one of the last frames.
    """
    if isinstance(last_frames, bool) or not isinstance(last_frames, int) or last_frames < 1:
        raise ValueError(f"last_frames must be a positive integer. Received: last_frames={last_frames!r}")
    root_path = require_folder(root)
    folders = find_ckplus_folders(root_path)
    if folders is None:
        raise ValueError(f"{root_path} has no {IMAGES_FOLDER}/ and {EMOTION_FOLDER}/ folders "
                         "(format ckplus, the original CK+ release)")
    images_dir, emotion_dir = folders
    skipped = SkipLog()
    samples: list[Sample] = []
    seen: set[tuple[str, str]] = set()

    for subject in _subfolders(images_dir):
        for seq in _subfolders(images_dir / subject):
            seen.add((subject, seq))
            seq_dir = images_dir / subject / seq
            sequence = f"{subject}_{seq}"
            frames = []
            for entry in sorted_entries(seq_dir):
                if entry.is_dir():
                    continue
                reason = not_an_image(Path(entry.path))
                if reason is not None:
                    skipped.add(reason, entry.path)
                else:
                    frames.append(seq_dir / entry.name)
            label_dir = emotion_dir / subject / seq
            label_files = ([label_dir / e.name for e in sorted_entries(label_dir)
                            if not e.is_dir() and e.name.lower().endswith(".txt")]
                           if label_dir.is_dir() else [])
            if not label_files:
                skipped.add("unlabelled_sequence", str(seq_dir))
                continue
            if len(label_files) > 1:
                skipped.add("ambiguous_label", str(label_dir))
                continue
            if special_file(label_files[0]) is not None:
                skipped.add("not_a_regular_file", str(label_files[0]))
                continue
            label = read_emotion_file(label_files[0])
            if label is None:
                skipped.add("unknown_label", str(label_files[0]))
                continue
            if not frames:
                skipped.add("missing_image", str(seq_dir))
                continue
            chosen = frames[-last_frames:]
            if first_as_neutral and len(frames) > last_frames:
                samples.append(Sample(source=str(frames[0]), label="neutral", subject=subject,
                                      sequence=sequence))
            samples.extend(Sample(source=str(f), label=label, subject=subject, sequence=sequence)
                           for f in chosen)

    for subject in _subfolders(emotion_dir):
        for seq in _subfolders(emotion_dir / subject):
            label_dir = emotion_dir / subject / seq
            if (subject, seq) not in seen and any(
                    e.name.lower().endswith(".txt") for e in sorted_entries(label_dir)):
                skipped.add("missing_image", str(label_dir))

    return checked(Catalogue(format="ckplus", root=str(root), samples=samples, skipped=skipped,
                             needs_detection=True, colour=False))
