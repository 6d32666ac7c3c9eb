"""Prediction without TensorFlow: a model's TFLite artifact run by LiteRT.

A person who only wants expressions out of photographs needs neither
TensorFlow nor Keras: every model in the box ships its checked TFLite
artifact beside its ``.keras`` file (``classifier.tflite``, written and
checked by :func:`csa_keras.inference.export.export_run`, its record in
``export.json``), and the ``ai-edge-litert`` interpreter runs it.
:class:`~csa_keras.inference.predictor.Predictor` takes a ``runtime``
(:data:`RUNTIMES`):

``keras``
    the ``.keras`` model, loaded by Keras on TensorFlow (the ``train``
    extra); every task and option, ``voting=`` included.
``litert``
    the TFLite artifact, run by LiteRT; neither TensorFlow nor Keras is
    imported. The same faces, records and labels as ``keras``, the
    probabilities within the export's parity limit of them.
``auto`` (the default)
    ``keras`` where TensorFlow and Keras are installed, ``litert``
    otherwise (:func:`choose_runtime`): an installation with the ``train``
    extra keeps the Keras model it trains, a light one runs the artifact.

Everything the Keras path reads from the model and its task comes, on this
path, from files: the input shape and the outputs from the artifact's
``serving_default`` signature; the class names and the channels trained on
from the ``.keras`` archive's ``preprocessing.json`` beside it (read as a zip, no
Keras), else the run's ``metrics.json`` or ``config.json``; for a model with
several outputs, the one that gives the class probabilities from
``export.json`` (``probabilities_output``, the Voting ResNet's ``vote``), the
export having measured which of them the task reads. The task registry is
not loaded: its tasks import Keras.

The artifact of a ``.keras`` model is ``<stem>.tflite`` beside it, else
``export/<stem>.tflite`` in its folder (where ``python -m csa_keras.export``
writes a run's float32 artifact by default): :func:`artifact_path`.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.inference.loading import (
    PRETRAINED_ROOT,
    class_names_for,
    run_json,
    trained_channels,
)
from csa_keras.utils.files import FileTooLarge, read_json
from csa_keras.utils.messages import one_of
from csa_keras.utils.quiet import stderr_filtered

RUNTIMES = ("auto", "keras", "litert")
"""What runs the model: chosen by installation (``auto``), the Keras model, or its TFLite artifact."""

ARTIFACT_SUFFIX = ".tflite"
EXPORT_RECORD = "export.json"
INSTALL_HINT = "pip install ai-edge-litert"


def keras_installed() -> bool:
    """Whether TensorFlow and Keras can be imported (found, not imported)."""
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "keras"))


def choose_runtime(runtime: str = "auto") -> str:
    """``keras`` or ``litert``: ``runtime`` itself, or for ``auto`` ``keras`` where TensorFlow and
    Keras are installed and ``litert`` otherwise; a one-line ``ValueError`` for any other value."""
    if runtime not in RUNTIMES:
        raise ValueError(one_of("runtime", RUNTIMES, runtime))
    if runtime == "auto":
        return "keras" if keras_installed() else "litert"
    return runtime


def artifact_path(model_path: str | os.PathLike) -> Path | None:
    """The TFLite artifact of the ``.keras`` file ``model_path`` (module docstring), ``None`` if none."""
    model_path = Path(model_path)
    for candidate in (model_path.with_suffix(ARTIFACT_SUFFIX),
                      model_path.parent / "export" / f"{model_path.stem}{ARTIFACT_SUFFIX}"):
        if candidate.is_file():
            return candidate
    return None


def _folder_artifact(folder: Path) -> Path:
    """The one TFLite artifact of a run directory or a model folder, or a one-line refusal."""
    found = [artifact for model in sorted(folder.glob("*.keras")) if (artifact := artifact_path(model))]
    if not found and not any(folder.glob("*.keras")):
        found = sorted(folder.glob(f"*{ARTIFACT_SUFFIX}"))
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{folder} holds several TFLite artifacts ({', '.join(p.name for p in found)}): "
                         "give one of them as the model")
    raise ValueError(f"{folder} holds no TFLite artifact of a model (<model>.tflite beside its .keras, or "
                     "in export/): export one with python -m csa_keras.export --to tflite, or predict "
                     "with the keras runtime")


def pretrained_artifacts() -> list[str]:
    """The models in the box that ship a TFLite artifact, sorted."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(folder.name for folder in PRETRAINED_ROOT.iterdir()
                  if folder.is_dir() and not folder.name.startswith(".") and any(folder.glob(f"*{ARTIFACT_SUFFIX}")))


def pretrained_folder(name: str) -> Path:
    """The folder of the model in the box called ``name`` that ships a TFLite artifact, or a one-line
    ``ValueError`` naming those that do."""
    names = pretrained_artifacts()
    if name not in names:
        raise ValueError(f"name must be one of the models in the box with a TFLite artifact "
                         f"({', '.join(names) or 'none installed'}). Received: name={name!r}")
    return PRETRAINED_ROOT / name


def resolve_artifact(path: str | os.PathLike) -> Path:
    """The ``.tflite`` file ``path`` names: itself, the artifact of a ``.keras`` file, of a run
    directory or of a model folder, or of the model in the box of that name when no file or folder
    ``path`` exists. Every problem is a one-line ``ValueError``; the task registry is not loaded."""
    path = Path(path)
    if not path.exists() and str(path) in pretrained_artifacts():
        path = PRETRAINED_ROOT / str(path)
    if not path.exists():
        names = pretrained_artifacts() if len(path.parts) == 1 else []
        raise ValueError(f"model {path} does not exist" + (
            f" (models in the box: {', '.join(names)})" if names else ""))
    if path.is_dir():
        return _folder_artifact(path)
    if path.suffix.lower() == ARTIFACT_SUFFIX:
        return path
    if path.suffix.lower() == ".keras":
        artifact = artifact_path(path)
        if artifact is None:
            raise ValueError(f"model {path} has no TFLite artifact ({path.stem}{ARTIFACT_SUFFIX} beside it or "
                             "in export/): export one with python -m csa_keras.export --to tflite, or "
                             "predict with the keras runtime")
        return artifact
    raise ValueError(f"model {path} is not a .tflite or .keras file: give a run directory, a model in the "
                     "box or a model file")


def keras_file(artifact: Path) -> Path:
    """The ``.keras`` model an artifact was exported from (it may not exist): beside it, or in
    the folder above ``export/``; its preprocessing.json and run files describe the artifact."""
    beside = artifact.with_suffix(".keras")
    if not beside.exists() and artifact.parent.name == "export":
        return artifact.parent.parent / beside.name
    return beside


def export_record(artifact: Path) -> dict[str, Any]:
    """The artifact's record in the ``export.json`` beside it (empty when there is none)."""
    try:
        records = read_json(artifact.parent / EXPORT_RECORD)
    except FileTooLarge:
        raise
    except (OSError, ValueError):
        return {}
    record = records.get(artifact.name) if isinstance(records, dict) else None
    return record if isinstance(record, dict) else {}


def _interpreter(path: Path, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ValueError(f"the litert runtime needs the LiteRT interpreter ({INSTALL_HINT}); "
                         "or install the train extra and predict with the keras runtime") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Interpreter(model_path=str(path), num_threads=num_threads)
    except Exception as error:
        text = str(error).strip().splitlines()
        raise ValueError(f"cannot load {path}: {text[0] if text else type(error).__name__}") from None


def _without_info(text: str) -> list[str]:
    """``text``'s lines but LiteRT's ``INFO:`` ones (the interpreter announces its CPU delegate)."""
    return [line for line in text.splitlines() if not line.startswith("INFO: ")]


def _shape(details: dict[str, Any]) -> tuple[int | None, ...]:
    shape = [int(d) for d in details.get("shape_signature", details["shape"])]
    return (None, *(None if d < 0 else d for d in shape[1:]))


class LiteRTModel:
    """A model's TFLite artifact run by LiteRT, with what :class:`~csa_keras.inference.predictor.Predictor`
    asks of a Keras model: ``input_shape``, ``name``, ``predict_on_batch``.

    ``predict_on_batch`` returns the output that gives the class
    probabilities (the only one, or ``probabilities_output`` of the
    artifact's export record); ``class_names``, ``channels`` (those trained
    on, ``None`` if unrecorded) and ``task`` (``None`` if unrecorded) come
    from the files beside it (module docstring).
    """

    runtime = "litert"

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._runner = _interpreter(self.path, num_threads).get_signature_runner()
        inputs = self._runner.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{self.path} takes {len(inputs)} inputs: a classifier of one image batch is needed")
        ((self._input, details),) = inputs.items()
        self.input_shape = _shape(details)
        outputs = {name: _shape(d) for name, d in self._runner.get_output_details().items()}
        record = export_record(self.path)
        if len(outputs) == 1:
            (self.output,) = outputs
        elif record.get("probabilities_output") in outputs:
            self.output = record["probabilities_output"]
        else:
            raise ValueError(f"{self.path} has {len(outputs)} outputs ({', '.join(sorted(outputs))}) and its "
                             f"{EXPORT_RECORD} names none that gives the class probabilities: export it again, "
                             "or predict with the keras runtime")
        self.output_shape = outputs[self.output]
        if len(outputs) == 1 and self.output_shape[1:] == self.input_shape[1:]:
            raise ValueError(f"{self.path} is an autoencoder (it reconstructs its input images): "
                             "predict with the run's classifier")
        if len(self.output_shape) != 2 or (self.output_shape[1] or 0) < 2:
            raise ValueError(f"{self.path} gives class scores of shape {self.output_shape[1:]}: a classifier "
                             "gives (batch, classes) with at least 2 classes")
        self.num_classes = int(self.output_shape[1])
        described = keras_file(self.path)
        if not described.is_file():
            described = self.path
        self.class_names = class_names_for(described, self.num_classes)
        self.channels = trained_channels(described)
        task = record.get("task") or (run_json(described, "metrics.json") or {}).get("task")
        self.task = task if isinstance(task, str) else None
        if None not in self.input_shape[1:]:
            with stderr_filtered(_without_info):
                self.predict_on_batch(np.zeros((1, *self.input_shape[1:]), np.float32))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """The probabilities output for a batch of ``(n, H, W, C)`` float32 images in [0, 1]."""
        outputs = self._runner(**{self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(outputs[self.output])


def load_artifact(path: str | os.PathLike, num_threads: int | None = None) -> LiteRTModel:
    """The TFLite artifact ``path`` names (:func:`resolve_artifact`), loaded; one-line ``ValueError`` s."""
    return LiteRTModel(resolve_artifact(path), num_threads)
