"""The one way the project finds, inspects and loads a saved model of any task.

A run directory holds the model file of its task (the ``model_file`` of a
registered :class:`~csa_keras.tasks.Task`); :func:`resolve_model_path` turns
a run directory or a ``.keras`` file into that file, and
:func:`~csa_keras.inference.archive.read_archive_config`
reads the model config stored in the ``.keras`` zip without Keras, so a
truncated or foreign file fails in one line before Keras reads it.
:func:`load_model` is the safe loader every command uses.

A ``.keras`` file is data from anywhere, so loading it must never run or
import code the file chooses:

* only the packages of the registered tasks (:func:`~csa_keras.tasks.model_packages`)
  are imported to register their layers, never a package a file names;
  a class of any other package is refused before Keras sees the file;
* the archive is bounded before Keras reads a byte of it: its
  ``config.json``, its members and the arrays its weights file declares
  (:mod:`csa_keras.inference.archive`);
* Keras loads with ``safe_mode=True`` (no lambdas, no arbitrary imports).

The package ships pretrained models in :data:`PRETRAINED_ROOT`, one folder
each, known by the folder's name (``csa_fer2013``, ``vrn_fer2013``):
wherever a model path is taken, such a name is taken too, unless a file or
folder of that name exists (:func:`resolve_model_path`). :data:`PRETRAINED`
is the one used when a caller names no model (:func:`pretrained_run`).

The class names and input channels of a saved model come from its archive's
``preprocessing.json`` (:mod:`csa_keras.utils.artifacts`), else from the run that
wrote it: ``metrics.json`` or ``config.json`` beside the model, or in the
run directory above a ``foldNN`` / ``splitK`` folder.

A command resolves what its ``--model`` names once, into a
:class:`ModelSource` (the model file, the folder taken as its run and the
archive's config, read and bounded), and hands that down: the checks, the
loader and the predictor take it as it is, so neither the path is resolved
nor the archive read a second time.

Keras is imported inside :func:`load_model` only, so that the commands can
resolve and inspect a model file, and refuse a bad one in one clean line,
before TensorFlow loads (TensorFlow writes log lines on stderr as it does).
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csa_keras.data.dataset import CANONICAL_CLASSES
from csa_keras.data.faces import preprocessing_for
from csa_keras.inference.archive import check_weights, read_archive_config, registered_names
from csa_keras.tasks import Task, all_tasks, model_packages
from csa_keras.utils.artifacts import read_preprocessing
from csa_keras.utils.files import FileTooLarge, read_json
from csa_keras.utils.paths import special_file

PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "pretrained"
"""Where the package's pretrained models live: one run-like folder each (the task's model file,
``config.json``, ``metrics.json`` with the class names, ``MODEL_CARD.md``), named by the model."""

DEFAULT_MODEL = "vrn_fer2013"
"""The pretrained model prediction uses when no model is given: the one of the box with the best
accuracy on the same FER2013 validation images (docs/results.md)."""

CSA_MODEL = "csa_fer2013"
"""The pretrained CSA: the model ``python -m csa_keras.inference.pretrained`` packs by default."""

PRETRAINED = PRETRAINED_ROOT / DEFAULT_MODEL
"""The folder of :data:`DEFAULT_MODEL`."""

_RUN_SUBFOLDER = re.compile(r"fold\d+|split\d+")


def task_files() -> str:
    """The model files a run directory may hold, for messages: ``a.keras (A) or b.keras (B)``."""
    tasks = list(all_tasks().values())
    if not tasks:
        return "model file of a registered task (none is registered)"
    return " or ".join(f"{task.model_file} ({task_title(task)})" for task in tasks)


def task_title(task: Task) -> str:
    """The name a person knows the task by (``CSA``, ``Voting ResNet``): its ``title``, else its name."""
    return task.title or task.name


def pretrained_names() -> list[str]:
    """The names of the pretrained models installed with the package, sorted."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    files_of_tasks = [task.model_file for task in all_tasks().values()]
    return sorted(folder.name for folder in PRETRAINED_ROOT.iterdir()
                  if folder.is_dir() and not folder.name.startswith(".")
                  and any((folder / name).is_file() for name in files_of_tasks))


def pretrained_name(path: str | os.PathLike) -> str | None:
    """The name of the pretrained model ``path`` is or lies in, else ``None``."""
    try:
        relative = Path(path).resolve().relative_to(PRETRAINED_ROOT)
    except (ValueError, OSError):
        return None
    return relative.parts[0] if relative.parts else None


def model_location(path: str | os.PathLike) -> Path:
    """``path``, or the folder of the pretrained model of that name when no such path exists."""
    path = Path(path)
    if not path.exists() and str(path) in pretrained_names():
        return PRETRAINED_ROOT / str(path)
    return path


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The ``.keras`` file ``path`` names: itself, the model file of a run directory, or the
    model file of the pretrained model of that name (:func:`pretrained_names`) when no file or
    folder ``path`` exists.

    Raises a one-line ``ValueError`` for a missing path, a special file (a
    FIFO would block the read), a folder that is not a run directory, a run that stopped before its predicting model was
    saved, or a file that is not a ``.keras`` model.
    """
    path = model_location(path)
    if not path.exists():
        names = pretrained_names() if len(path.parts) == 1 else []
        raise ValueError(f"model {path} does not exist" + (
            f" (models in the box: {', '.join(names)})" if names else ""))
    if path.is_dir():
        tasks = list(all_tasks().values())
        for task in tasks:
            if (path / task.model_file).is_file():
                return path / task.model_file
        for task in tasks:
            for name in task.run_files:
                if (path / name).is_file():
                    raise ValueError(f"{path} holds {name} but no {task.model_file} "
                                     "(the run stopped before saving it)")
        raise ValueError(f"{path} is not a run directory: it holds no {task_files()}")
    if (kind := special_file(path)) is not None:
        raise ValueError(f"model {path} is {kind}, not a regular file")
    if path.suffix.lower() != ".keras":
        raise ValueError(f"model {path} is not a .keras file: give a run directory or its "
                         f"{' / '.join(t.model_file for t in all_tasks().values()) or '.keras model'}")
    return path


@dataclass(frozen=True)
class ModelSource:
    """A saved model as a command names it, resolved once (module docstring).

    Attributes:
        path: the ``.keras`` file (:func:`resolve_model_path`).
        run_dir: the folder taken as the model's run: the run directory named,
            else the folder holding the file.
        config: the archive's model config, read and bounded without Keras
            (:func:`~csa_keras.inference.archive.read_archive_config`).
        name: the pretrained model's name when it is one of the box's, else
            ``None``.
    """

    path: Path
    run_dir: Path
    config: dict[str, Any] = field(repr=False)
    name: str | None = None

    @classmethod
    def resolve(cls, model: str | os.PathLike | ModelSource) -> ModelSource:
        """The source ``model`` names (a run directory, a ``.keras`` file or a model in the box),
        found and its archive read without Keras; a :class:`ModelSource` is returned as it is.
        Every problem is a one-line ``ValueError`` (:func:`resolve_model_path`)."""
        if isinstance(model, ModelSource):
            return model
        location = model_location(model)
        path = resolve_model_path(location)
        config = read_archive_config(path)
        run_dir = location if location.is_dir() else path.parent
        return cls(path=path, run_dir=run_dir, config=config, name=pretrained_name(path))

    @property
    def label(self) -> str:
        """What messages call the model: the pretrained name, else the file's path."""
        return self.name or str(self.path)


def pretrained_run(name: str | None = None) -> Path:
    """The folder of the pretrained model ``name`` (default :data:`PRETRAINED`), or a one-line
    ``ValueError`` when it is not installed."""
    if name is not None:
        names = pretrained_names()
        if name not in names:
            raise ValueError(f"name must be one of the models in the box "
                             f"({', '.join(names) or 'none installed'}). Received: name={name!r}")
        return PRETRAINED_ROOT / name
    if not PRETRAINED.is_dir():
        raise ValueError(f"no pretrained model is installed ({PRETRAINED} does not exist): "
                         "give a run directory or a .keras model")
    return PRETRAINED


def model_or_default(model: str | os.PathLike | None) -> str | os.PathLike:
    """``model``, or the folder of :data:`PRETRAINED` when it is ``None`` (the default of every
    command's ``--model``); a one-line ``ValueError`` when that is not installed."""
    if model is not None:
        return model
    if not PRETRAINED.is_dir():
        raise ValueError(f"no pretrained model is installed ({PRETRAINED} does not exist): "
                         "choose a model with --model")
    return PRETRAINED


def import_task_packages() -> None:
    """Import the packages of every registered task, so that Keras knows their classes."""
    for package in model_packages():
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ValueError(f"the package {package} of a registered task cannot be imported "
                             f"({error})") from None


def load_model(path: str | os.PathLike | ModelSource):
    """A saved model of any registered task, loaded for inference (module docstring).

    ``path`` is a run directory, a ``.keras`` file, a model in the box by
    name, or a :class:`ModelSource` already resolved (and not resolved again). The model is loaded
    with ``compile=False`` and ``safe_mode=True`` after the registered tasks'
    packages, and nothing else, are imported; a class the file names that
    none of them registers is refused by name, and so is an archive or a
    weights file over its bounds (:mod:`csa_keras.inference.archive`). Every failure is a one-line ``ValueError``.
    """
    source = ModelSource.resolve(path)
    path, config = source.path, source.config
    import_task_packages()
    import keras

    known = keras.saving.get_custom_objects()
    unknown = sorted(name for name in registered_names(config) if name not in known)
    if unknown:
        raise ValueError(f"{path} uses {unknown[0]!r}, a class that no registered task provides "
                         "(only their packages are imported)")
    check_weights(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        text = str(error).strip().splitlines()
        raise ValueError(f"cannot load {path}: {text[0] if text else type(error).__name__}") from None


def run_json(model_path: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """``name`` (``metrics.json``, ``config.json``) of the run that wrote ``model_path``.

    Read from the model's folder, else from the run directory above a
    ``foldNN`` or ``splitK`` folder; ``None`` when neither holds a readable
    JSON object.
    """
    model_path = Path(model_path)
    folders = [model_path.parent]
    if _RUN_SUBFOLDER.fullmatch(model_path.parent.name):
        folders.append(model_path.parent.parent)
    for folder in folders:
        if not (folder / name).is_file():
            continue
        try:
            data = read_json(folder / name)
        except FileTooLarge:
            raise
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def _dataset_summary(model_path: str | os.PathLike) -> dict[str, Any]:
    """The dataset summary a run recorded in ``config.json`` (``run.dataset``)."""
    config = run_json(model_path, "config.json") or {}
    run = config.get("run")
    summary = run.get("dataset") if isinstance(run, dict) else None
    return summary if isinstance(summary, dict) else {}


def check_class_names(names: Any, num_classes: int, where: str) -> list[str]:
    """``names`` as the class names of a model with ``num_classes`` outputs, or a one-line ``ValueError``.

    Class names read back from a file are input: they must be a list of as
    many distinct, non-empty strings as the model has outputs. Two outputs
    of one name would merge two classes (every answer of either counted
    right), and a list of another length would shift every label.
    """
    received = f"Received: class_names={str(names)[:120]} in {where}"
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"class_names must be a list of non-empty names. {received}")
    if len(names) != num_classes:
        raise ValueError(f"class_names must name each of the model's {num_classes} outputs. {received}, "
                         f"{len(names)} names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class_names must be distinct. {received}, naming {repeated[0]!r} "
                         f"{names.count(repeated[0])} times")
    return list(names)


def class_names_for(model_path: str | os.PathLike, num_classes: int) -> list[str]:
    """The names of a saved model's ``num_classes`` classes.

    The archive's ``preprocessing.json``, else the run's ``metrics.json`` or
    recorded dataset names them, checked (:func:`check_class_names`): the
    first that names classes must name them right, or the model is refused.
    Without any, the canonical eight when the model has eight classes, else
    ``class_0``, ``class_1``, ...
    """
    metrics = run_json(model_path, "metrics.json") or {}
    preprocessing = read_preprocessing(model_path) or {}
    for names, where in ((preprocessing.get("class_names"), "preprocessing.json"),
                         (metrics.get("class_names"), "metrics.json"),
                         (_dataset_summary(model_path).get("class_names"), "config.json")):
        if names is not None:
            return check_class_names(names, num_classes, f"the {where} of {model_path}")
    if num_classes == len(CANONICAL_CLASSES):
        return list(CANONICAL_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def trained_channels(model_path: str | os.PathLike) -> int | None:
    """The channels of the images the run trained on (1: grey, 3: colour), ``None`` if unrecorded.

    A model with three input channels trained on grey data takes grey faces
    repeated to three channels, as in training.
    """
    shape = (read_preprocessing(model_path) or {}).get("input", {}).get("shape")
    if not isinstance(shape, list):
        shape = _dataset_summary(model_path).get("image_shape")
    if isinstance(shape, list) and len(shape) == 3 and shape[-1] in (1, 3):
        return int(shape[-1])
    return None


def model_preprocessing(model_path: str | os.PathLike, model) -> dict[str, Any]:
    """The ``preprocessing.json`` of a saved model: its archive's, else rebuilt from its run's files.

    Models saved before archives carried it are described from the run's
    ``metrics.json`` and ``config.json`` and the model's input shape.
    """
    preprocessing = read_preprocessing(model_path)
    if preprocessing is not None:
        return preprocessing
    shape = list(model.input_shape[1:])
    channels = trained_channels(model_path) or shape[-1]
    config = run_json(model_path, "config.json") or {}
    detect = (config.get("config") or {}).get("detect", "auto")
    return preprocessing_for(class_names_for(model_path, model.output_shape[-1]),
                        [shape[0], shape[1], channels], detect if isinstance(detect, str) else "auto")
