"""Expression prediction on photographs, folders and videos with a saved model.

:class:`Predictor` wraps a ``.keras`` model written by either training
command: the CSA classifier (``classifier.keras``, one softmax output) or the
Voting ResNet (``model.keras``, outputs ``crop_logits`` and ``vote``; the
``vote`` output holds the soft or hard vote over the 10 views, a distribution
over the classes). Every image goes through the preprocessing the model was
trained with (SPEC §2, :mod:`csa_keras.data.faces`), so a photograph reaches
the model exactly as a training frame did:

* decoded with :func:`~csa_keras.data.faces.read_image` (EXIF orientation,
  any bit depth or palette, reduced to ``max_side`` pixels a side);
* searched for faces with the Viola-Jones cascade unless it is small enough
  to be a face crop already (the ``detect="auto"`` rule of
  :class:`~csa_keras.data.faces.FaceSettings`: longer side at most
  ``AUTO_DETECT_FACTOR x`` the input size), in which case the whole image is
  the face;
* cropped per face by :func:`~csa_keras.data.faces._crop_face`, the function
  training uses, so margin, grey or colour conversion and ``INTER_AREA``
  resizing match; then scaled to [0, 1].

Training keeps only the largest face of a frame; prediction classifies every
face the cascade finds, largest first, so face 0 is the one training would
have used.

The input size and channels come from ``model.input_shape``; the class names
from ``metrics.json`` or ``config.json`` beside the model (in a run
directory, or the run directory above a ``foldNN`` / ``splitK`` folder), else
the canonical eight when the model has eight classes, else ``class_0``,
``class_1``, ... A Voting ResNet trained on grey data with three input
channels (its ``config.json`` says the dataset was grey) gets grey faces
repeated to three channels, as in training.

Records
-------
Every detected face yields one record, a ``dict`` with the keys of
:data:`RECORD_KEYS`:

``source``
    the file path (``"<array>"`` or ``"<bytes>"`` for in-memory images).
``frame``, ``time_s``
    frame index and time in seconds in a video; ``None`` for images.
``face``
    index of the face in its image (0 = largest), ``None`` without a face.
``status``
    ``"ok"`` (a face was classified), ``"no_face"`` (the cascade found none;
    the image is reported, not dropped) or ``"error"`` (the file could not be
    read; ``error`` says why in one line).
``crop``
    how the face was taken: ``"detected"`` by the cascade, ``"whole"`` image
    (a face crop already), or the ``"center"`` square (``no_face="center"``).
``box``
    ``[x, y, w, h]`` of the crop in the original image's pixels.
``label``, ``score``
    the predicted class and its probability.
``probabilities``
    ``{class name: probability}`` for every class of the model, summing to 1.
``error``
    the reason of an ``"error"`` record, else ``None``.

Faces are classified in batches of ``batch_size`` collected across images and
frames (one ``predict_on_batch`` per batch), and records come out in input
order.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

from csa_keras.data import faces as _faces
from csa_keras.data.dataset import CANONICAL_CLASSES
from csa_keras.data.faces import FaceDetector, FaceSettings, ImageDecodeError, NoFaceError, read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
"""Files taken as images inside an input folder (a file named on its own is always tried)."""

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
"""Files read frame by frame with ``cv2.VideoCapture``."""

RUN_MODEL_FILES = ("classifier.keras", "model.keras")
"""The classifier a run directory holds: the CSA's, or the Voting ResNet's."""

RECORD_KEYS = ("source", "frame", "time_s", "face", "status", "crop", "box", "label", "score",
               "probabilities", "error")
"""The keys of every prediction record, in output order (module docstring)."""

STATUSES = ("ok", "no_face", "error")
NO_FACE_MODES = ("skip", "center", "error")
VOTING_MODES = ("soft", "hard")
DEFAULT_BATCH_SIZE = 64

_ANNOTATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_REGISTERING_MODULES = {"voting_resnet": "voting_resnet.models"}
_SUBFOLDER = re.compile(r"fold\d+|split\d+")
_GREEN, _RED, _BLACK = (0, 200, 0), (0, 0, 230), (0, 0, 0)


# --------------------------------------------------------------------------- model files


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The ``.keras`` file ``path`` names: itself, or the classifier of a run directory.

    Raises a one-line ``ValueError`` for a missing path, a folder that is not
    a run directory, a CSA run that never reached fine-tuning, or a file that
    is not a ``.keras`` model.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"model {path} does not exist")
    if path.is_dir():
        for name in RUN_MODEL_FILES:
            if (path / name).is_file():
                return path / name
        if (path / "autoencoder.keras").is_file():
            raise ValueError(f"{path} holds autoencoder.keras but no classifier.keras "
                             "(the run stopped before fine-tuning)")
        raise ValueError(f"{path} is not a run directory: it holds no classifier.keras (CSA) "
                         "or model.keras (Voting ResNet)")
    if path.suffix.lower() != ".keras":
        raise ValueError(f"model {path} is not a .keras file: give a run directory, "
                         "classifier.keras or model.keras")
    return path


def read_archive_config(path: str | os.PathLike) -> dict[str, Any]:
    """The model config stored in a ``.keras`` archive, read without loading Keras.

    A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and
    ``model.weights.h5``; a truncated or foreign file fails here in one line
    rather than deep inside ``load_model``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ValueError(f"{path} is not a complete .keras model: it lacks "
                                 f"{', '.join(sorted(missing))}")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, EOFError):
        raise ValueError(f"{path} is not a readable .keras archive (truncated or not a Keras 3 "
                         "model)") from None
    except OSError as error:
        raise ValueError(f"cannot read model {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path} holds an unreadable config.json") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds an unreadable config.json")
    return config


def archive_task(config: dict[str, Any]) -> str:
    """``"voting_resnet"`` for a model whose outputs include ``vote``, else ``"csa"``.

    Any other single-output Keras classifier is handled like the CSA's.
    """
    outputs = config.get("config", {}).get("output_layers") if isinstance(config.get("config"), dict) else None
    return "voting_resnet" if isinstance(outputs, dict) and "vote" in outputs else "csa"


def _registered_packages(node: Any) -> set[str]:
    """Packages named by the ``package>Class`` registered names of a saved config."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("registered_name")
            if isinstance(name, str) and ">" in name:
                found.add(name.split(">", 1)[0])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def load_model(path: str | os.PathLike):
    """Load a ``.keras`` classifier for inference (``compile=False``, ``safe_mode=True``).

    The packages whose registered classes the archive names are imported
    first (``voting_resnet`` registers its crop, regroup and voting layers),
    so no ``custom_objects`` are needed and nothing is imported that the
    model does not use.
    """
    path = resolve_model_path(path)
    config = read_archive_config(path)
    for package in sorted(_registered_packages(config)):
        module = _REGISTERING_MODULES.get(package, package)
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(f"{path} uses classes from '{package}', which cannot be imported") from None
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any failure to rebuild a saved model is a bad model file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot load {path}: {reason}") from None


def _run_json(model_path: Path, name: str) -> dict[str, Any] | None:
    """``name`` from the model's folder, or from the run directory above a fold or split folder."""
    folders = [model_path.parent]
    if _SUBFOLDER.fullmatch(model_path.parent.name):
        folders.append(model_path.parent.parent)
    for folder in folders:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def _dataset_summary(model_path: Path) -> dict[str, Any]:
    config = _run_json(model_path, "config.json") or {}
    summary = config.get("run", {}).get("dataset") if isinstance(config.get("run"), dict) else None
    return summary if isinstance(summary, dict) else {}


def class_names_for(model_path: str | os.PathLike, num_classes: int) -> list[str]:
    """The class names of a saved model with ``num_classes`` outputs (module docstring)."""
    model_path = Path(model_path)
    metrics = _run_json(model_path, "metrics.json") or {}
    for names in (metrics.get("class_names"), _dataset_summary(model_path).get("class_names")):
        if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
            return list(names)
    if num_classes == len(CANONICAL_CLASSES):
        return list(CANONICAL_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def _trained_on_grey(model_path: Path) -> bool:
    shape = _dataset_summary(model_path).get("image_shape")
    return isinstance(shape, list) and len(shape) == 3 and shape[-1] == 1


# --------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One file to predict on: its path, ``"image"`` or ``"video"``, and its name in ``--annotate``."""

    path: Path
    kind: str
    name: str


def _kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def collect_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike | InputFile]) -> list[InputFile]:
    """Expand files and folders (recursively, hidden entries left out) into :class:`InputFile` s.

    Inside a folder only :data:`IMAGE_EXTENSIONS` and :data:`VIDEO_EXTENSIONS`
    count, in sorted order; a file named directly is tried whatever its
    extension (an unreadable one becomes an ``"error"`` record). A missing
    input or a folder with nothing to predict on is a ``ValueError``, raised
    before any prediction.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items: list[InputFile] = []
    for raw in inputs:
        if isinstance(raw, InputFile):
            items.append(raw)
            continue
        path = Path(raw)
        if not path.exists():
            raise ValueError(f"input {raw} does not exist")
        if not path.is_dir():
            items.append(InputFile(path, _kind(path), path.name))
            continue
        root_name = path.name or path.resolve().name or "input"
        found = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                suffix = Path(name).suffix.lower()
                if not name.startswith(".") and suffix in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                    found.append(Path(folder) / name)
        if not found:
            raise ValueError(f"input folder {raw} holds no image or video files")
        for file in sorted(found):
            items.append(InputFile(file, _kind(file), str(Path(root_name) / file.relative_to(path))))
    if not items:
        raise ValueError("no inputs given")
    return items


class _VideoError(Exception):
    pass


def _video_frames(path: Path, every: int, max_side: int) -> Iterator[tuple[int, float | None, np.ndarray, tuple[int, int]]]:
    """``(index, seconds, RGB frame reduced to max_side, original (h, w))`` of every ``every``-th frame.

    Skipped frames are only grabbed, not decoded. Raises :class:`_VideoError`
    when the file does not open as a video or yields no frame.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise _VideoError("cannot open the video (not a format OpenCV can read)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and math.isfinite(fps) and fps > 0 else None
        index = 0
        while True:
            if index % every == 0:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB)
                seconds = None if fps is None else round(index / fps, 3)
                yield index, seconds, _faces._reduce(rgb, max_side), rgb.shape[:2]
            elif not capture.grab():
                break
            index += 1
        if index == 0:
            raise _VideoError("no frame could be read from the video")
    finally:
        capture.release()


def _frame_estimate(path: Path, every: int) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return max(1, -(-count // every)) if count > 0 else 1


# --------------------------------------------------------------------------- drawing


def draw_records(image: np.ndarray, records: Sequence[dict], original_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR copy of an RGB ``image`` with each face's box and ``label score`` drawn.

    Boxes in records are in original pixels; ``original_shape`` maps them onto
    a decoded image that was reduced. A ``no_face`` record is marked
    ``no face`` in the top-left corner.
    """
    image = np.asarray(image)
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    height, width = canvas.shape[:2]
    sy, sx = (1.0, 1.0) if original_shape is None else (height / original_shape[0], width / original_shape[1])
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(2 * scale))
    for record in records:
        if record["status"] == "ok":
            x, y, w, h = record["box"]
            x0, y0 = round(x * sx), round(y * sy)
            x1, y1 = round((x + w) * sx) - 1, round((y + h) * sy) - 1
            cv2.rectangle(canvas, (x0, y0), (x1, y1), _GREEN, thickness)
            _draw_label(canvas, f"{record['label']} {record['score']:.2f}", x0, y0, _GREEN, scale, thickness)
        elif record["status"] == "no_face":
            _draw_label(canvas, "no face", 0, 0, _RED, scale, thickness)
    return canvas


def _draw_label(canvas: np.ndarray, text: str, x: int, y: int, colour, scale: float, thickness: int) -> None:
    """``text`` on a filled band above ``(x, y)``, or below it where the top edge is too close."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    band = th + baseline + 4
    top = y - band if y - band >= 0 else y
    cv2.rectangle(canvas, (x, top), (x + tw + 4, top + band), colour, -1)
    cv2.putText(canvas, text, (x + 2, top + th + 2), font, scale, _BLACK, thickness, cv2.LINE_AA)


class _Annotator:
    """Writes annotated copies under one folder, keeping each input's relative name."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.used: set[Path] = set()

    def target(self, item: InputFile, frame: int | None) -> Path:
        name = Path(item.name)
        if frame is not None:
            name = name.with_name(f"{name.stem}_frame{frame:06d}.jpg")
        elif name.suffix.lower() not in _ANNOTATION_SUFFIXES:
            name = name.with_suffix(".png")
        path, n = self.folder / name, 1
        while path in self.used:
            n += 1
            path = self.folder / name.with_name(f"{name.stem}_{n}{name.suffix}")
        self.used.add(path)
        return path

    def write(self, entry: "_Entry") -> None:
        path = self.target(entry.item, entry.records[0]["frame"])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
        if not cv2.imwrite(str(temporary), draw_records(entry.image, entry.records, entry.original_shape)):
            temporary.unlink(missing_ok=True)
            raise OSError(f"cannot write the annotated image {path}")
        os.replace(temporary, path)


# --------------------------------------------------------------------------- prediction


@dataclasses.dataclass
class _Entry:
    """One image or frame in flight: its records, the faces still to classify, what to draw on."""

    records: list[dict]
    faces: list[np.ndarray]
    item: InputFile | None = None
    image: np.ndarray | None = None
    original_shape: tuple[int, int] | None = None


def _record(source: str, frame: int | None = None, time_s: float | None = None, **values: Any) -> dict:
    record = dict.fromkeys(RECORD_KEYS)
    record.update(source=source, frame=frame, time_s=time_s, **values)
    return record


def _error_reason(error: BaseException) -> str:
    if isinstance(error, ImageDecodeError):
        reason = error.reason.replace("_", " ")
        return f"{reason} ({error.detail})" if error.detail else reason
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that sum to 1: a softmax or vote output as it is (renormalised), anything else through a softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and (scores.min() < 0 or np.abs(scores.sum(axis=1) - 1).max() > 1e-3):
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores = np.clip(scores, 0, None)
    return scores / np.maximum(scores.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)


class Predictor:
    """Classify the expression of every face in images, folders and videos (module docstring).

    Args:
        model: a loaded Keras classifier: one ``(B, K)`` output (the CSA's
            softmax), or a dict with ``vote`` (the Voting ResNet).
        class_names: the ``K`` class names (default ``class_0`` ...).
        detect: ``auto`` (detect in frames, take small images whole),
            ``always`` or ``never``, as in training.
        no_face: ``skip`` (an image without a face gives one ``no_face``
            record), ``center`` (classify its centre square) or ``error``
            (raise :class:`~csa_keras.data.faces.NoFaceError`).
        voting: Voting ResNet only: ``soft`` or ``hard`` recomputes the vote
            from ``crop_logits``; ``None`` uses the model's own ``vote``.
        batch_size: faces per model call.
        grey: feed grey faces (repeated to the model's channels); default
            ``True`` for one-channel models, ``False`` otherwise.
        source: the model's path, named in error messages.
        task: ``"csa"`` or ``"voting_resnet"`` (inferred from the outputs).
        **face_options: other :class:`~csa_keras.data.faces.FaceSettings`
            fields (``margin``, ``min_size``, ``scale_factor``,
            ``min_neighbors``, ``max_side``); the defaults are training's.
    """

    def __init__(self, model, class_names: Sequence[str] | None = None, *, detect: str = "auto",
                 no_face: str = "skip", voting: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 grey: bool | None = None, source: str | None = None, **face_options: Any) -> None:
        self.model = model
        self.source = source or getattr(model, "name", "model")
        self.task = "voting_resnet" if isinstance(model.output, dict) else "csa"
        size, channels = self._check_input(model)
        self.num_classes = self._check_output(model)
        if no_face not in NO_FACE_MODES:
            raise ValueError(f"no_face must be one of {', '.join(NO_FACE_MODES)}, got {no_face!r}")
        if voting is not None and voting not in VOTING_MODES:
            raise ValueError(f"voting must be one of {', '.join(VOTING_MODES)}, got {voting!r}")
        if voting is not None and self.task != "voting_resnet":
            raise ValueError(f"voting applies to a Voting ResNet model; {self.source} is a CSA classifier")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
        names = [f"class_{i}" for i in range(self.num_classes)] if class_names is None else [str(n) for n in class_names]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for a model with {self.num_classes} classes")
        self.class_names = names
        self.channels = channels
        self.grey = channels == 1 if grey is None else bool(grey)
        self.no_face = no_face
        self.voting = voting
        self.batch_size = batch_size
        self.settings = FaceSettings(size=size, colour=not self.grey, detect=detect, **face_options)
        self._whole = dataclasses.replace(self.settings, margin=0.0)
        self._detector: FaceDetector | None = None

    @classmethod
    def from_run(cls, path: str | os.PathLike, **options: Any) -> "Predictor":
        """A predictor for a run directory or a ``.keras`` file, with its class names.

        ``options`` go to :class:`Predictor`. Every problem with the model
        file is a one-line ``ValueError``; a ``voting`` option for a CSA model
        is refused before the model is loaded.
        """
        model_path = resolve_model_path(path)
        config = read_archive_config(model_path)
        if options.get("voting") is not None and archive_task(config) != "voting_resnet":
            raise ValueError(f"voting applies to a Voting ResNet model; {model_path} is a CSA classifier")
        if options.get("grey") is None and _trained_on_grey(model_path):
            options["grey"] = True
        predictor = cls(load_model(model_path), source=str(model_path), **options)
        if options.get("class_names") is None:
            predictor.class_names = class_names_for(model_path, predictor.num_classes)
        return predictor

    # ----------------------------------------------------------------- checks

    def _check_input(self, model) -> tuple[int, int]:
        shape = model.input_shape
        if isinstance(shape, list) or len(shape) != 4:
            raise ValueError(f"{self.source} takes input {shape}: a classifier of (batch, size, size, "
                             "channels) images is needed")
        _, height, width, channels = shape
        if height is None or height != width or channels not in (1, 3):
            raise ValueError(f"{self.source} takes input {shape}: square 1- or 3-channel images are needed")
        return int(height), int(channels)

    def _check_output(self, model) -> int:
        output = model.output
        if isinstance(output, dict):
            if "vote" not in output:
                raise ValueError(f"{self.source} has outputs {', '.join(output)}: a Voting ResNet has 'vote'")
            output = output["vote"]
        elif isinstance(output, (list, tuple)):
            raise ValueError(f"{self.source} has {len(output)} outputs: a classifier has one")
        shape = tuple(output.shape)
        if len(shape) == 4 and shape[1:] == tuple(model.input_shape[1:]):
            raise ValueError(f"{self.source} is a CSA autoencoder (it reconstructs faces): "
                             "predict with classifier.keras")
        if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
            raise ValueError(f"{self.source} outputs shape {shape}: a classifier outputs (batch, classes)")
        return int(shape[-1])

    # ----------------------------------------------------------------- faces

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector.from_settings(self.settings)
        return self._detector

    def _detects(self, height: int, width: int) -> bool:
        """The ``detect`` rule of :func:`~csa_keras.data.faces._crop_face`."""
        mode = self.settings.detect
        return mode == "always" or (mode == "auto" and max(height, width) > _faces.AUTO_DETECT_FACTOR * self.settings.size)

    def _analyse(self, rgb: np.ndarray, original_shape: tuple[int, int], base: dict) -> tuple[list[dict], list[np.ndarray]]:
        """The records of one decoded image (predictions still empty) and its faces to classify."""
        height, width = rgb.shape[:2]
        if self._detects(height, width):
            boxes = sorted(self.detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)),
                           key=lambda b: b[2] * b[3], reverse=True)
            crop, settings = "detected", self.settings
        else:
            boxes, crop, settings = [(0, 0, width, height)], "whole", self._whole
        if not boxes:
            if self.no_face == "error":
                raise NoFaceError(base["source"])
            if self.no_face == "skip":
                return [_record(**base, status="no_face")], []
            boxes, crop, settings = [_faces._centre_square(height, width)], "center", self._whole
        records, crops = [], []
        sy, sx = original_shape[0] / height, original_shape[1] / width
        for box in boxes:
            face, _, (x, y, w, h) = _faces._crop_face(rgb, settings, box=box)
            if (sy, sx) != (1.0, 1.0):
                x, y, w, h = round(x * sx), round(y * sy), round(w * sx), round(h * sy)
            records.append(_record(**base, face=len(records), status="ok", crop=crop,
                                   box=[int(x), int(y), int(w), int(h)]))
            crops.append(face)
        return records, crops

    # ----------------------------------------------------------------- model

    def _scores(self, x: np.ndarray) -> np.ndarray:
        output = self.model.predict_on_batch(x)
        if self.task != "voting_resnet":
            return np.asarray(output)
        if self.voting is None:
            return np.asarray(output["vote"])
        from voting_resnet.layers.voting import vote

        return vote(np.asarray(output["crop_logits"]), self.voting)

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` of faces already cropped to the model's input size.

        ``faces``: ``uint8`` (scaled here) or float in [0, 1], ``(N, S, S)``,
        ``(N, S, S, 1)`` or ``(N, S, S, 3)``; grey faces are repeated to a
        three-channel model's input. Each row sums to 1.
        """
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[..., None]
        size = self.settings.size
        if faces.ndim != 4 or faces.shape[1:3] != (size, size) or faces.shape[3] not in (1, self.channels):
            raise ValueError(f"faces must be (N, {size}, {size}, {self.channels}), got {faces.shape}")
        x = faces.astype(np.float32) / 255.0 if faces.dtype == np.uint8 else faces.astype(np.float32)
        if x.shape[3] != self.channels:
            x = np.repeat(x, self.channels, axis=3)
        parts = [_as_probabilities(self._scores(x[i:i + self.batch_size]))
                 for i in range(0, len(x), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.num_classes))

    def _fill(self, record: dict, probabilities: np.ndarray) -> None:
        best = int(np.argmax(probabilities))
        record.update(label=self.class_names[best], score=float(probabilities[best]),
                      probabilities={n: float(p) for n, p in zip(self.class_names, probabilities)})

    def _flush(self, pending: list[_Entry], annotator: _Annotator | None) -> Iterator[dict]:
        faces = [face for entry in pending for face in entry.faces]
        if faces:
            rows = iter(self.classify(np.stack(faces)))
            for entry in pending:
                for record in entry.records:
                    if record["status"] == "ok":
                        self._fill(record, next(rows))
        for entry in pending:
            if annotator is not None and entry.image is not None:
                annotator.write(entry)
            yield from entry.records

    def _batched(self, entries: Iterable[_Entry], annotator: _Annotator | None) -> Iterator[dict]:
        """Classify the faces of ``entries`` in batches across images; records in input order."""
        pending: list[_Entry] = []
        n_faces = 0
        for entry in entries:
            pending.append(entry)
            n_faces += len(entry.faces)
            if n_faces >= self.batch_size or len(pending) >= self.batch_size:
                yield from self._flush(pending, annotator)
                pending, n_faces = [], 0
        yield from self._flush(pending, annotator)

    # ----------------------------------------------------------------- public

    def predict(self, image: str | os.PathLike | bytes | np.ndarray) -> list[dict]:
        """The records of one image: a path, encoded bytes, or a ``uint8`` grey / RGB array.

        An image without a face gives one ``no_face`` record (unless
        ``no_face`` says otherwise); a file that cannot be decoded gives one
        ``error`` record. Videos go through :meth:`predict_paths`.
        """
        if isinstance(image, np.ndarray):
            rgb = _faces._as_uint8_image(image)
            rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB) if rgb.ndim == 2 else rgb
            original, source = rgb.shape[:2], "<array>"
            rgb = _faces._reduce(rgb, self.settings.max_side)
        else:
            if isinstance(image, (bytes, bytearray, memoryview)):
                source = "<bytes>"
            else:
                source = str(image)
                if _kind(Path(image)) == "video":
                    raise ValueError(f"{image} is a video: use predict_paths")
            try:
                rgb, original = read_image(image, self.settings.max_side)
            except ImageDecodeError as error:
                return [_record(source, status="error", error=_error_reason(error))]
        records, faces = self._analyse(rgb, original, {"source": source})
        return list(self._flush([_Entry(records, faces)], None))

    def predict_paths(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], every: int = 1,
                      progress: bool = True, annotate: str | os.PathLike | None = None) -> Iterator[dict]:
        """Records for image files, folders (recursive) and videos (every ``every``-th frame).

        The inputs are expanded and checked at once (:func:`collect_inputs`:
        a missing input or an empty folder is a ``ValueError`` before any
        work); the records then stream out in input order as their batches
        are classified. An unreadable image or video gives an ``error``
        record and the rest goes on. ``progress`` shows a tqdm bar on stderr
        (images and frames) unless the input is a single image.
        ``annotate``: a folder receiving a copy of every image and sampled
        video frame (``<video>_frame000120.jpg``) with the boxes and labels
        drawn, at the decoded size (at most ``max_side`` pixels a side).
        """
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        items = collect_inputs(inputs)
        annotator = None if annotate is None else _Annotator(annotate)
        show = progress and not (len(items) == 1 and items[0].kind == "image")
        return self._generate(items, every, show, annotator)

    def _generate(self, items: list[InputFile], every: int, progress: bool,
                  annotator: _Annotator | None) -> Iterator[dict]:
        from tqdm import tqdm

        total = sum(1 if item.kind == "image" else _frame_estimate(item.path, every) for item in items) if progress else None
        with tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False) as bar:
            yield from self._batched(self._entries(items, every, bar, annotator is not None), annotator)

    def _entries(self, items: list[InputFile], every: int, bar, keep_images: bool) -> Iterator[_Entry]:
        max_side = self.settings.max_side
        for item in items:
            source = str(item.path)
            if item.kind == "image":
                try:
                    rgb, original = read_image(item.path, max_side)
                    records, faces = self._analyse(rgb, original, {"source": source})
                except NoFaceError:
                    raise
                except Exception as error:  # noqa: BLE001 - one bad file is reported, the batch goes on
                    yield _Entry([_record(source, status="error", error=_error_reason(error))], [])
                else:
                    yield _Entry(records, faces, item, rgb if keep_images else None, original)
                bar.update(1)
                continue
            frames = _video_frames(item.path, every, max_side)
            while True:
                try:
                    index, seconds, rgb, original = next(frames)
                except StopIteration:
                    break
                except Exception as error:  # noqa: BLE001 - an unreadable video is reported, the batch goes on
                    reason = str(error) if isinstance(error, _VideoError) else _error_reason(error)
                    yield _Entry([_record(source, status="error", error=reason)], [])
                    bar.update(1)
                    break
                records, faces = self._analyse(rgb, original, {"source": source, "frame": index, "time_s": seconds})
                yield _Entry(records, faces, item, rgb if keep_images else None, original)
                bar.update(1)
