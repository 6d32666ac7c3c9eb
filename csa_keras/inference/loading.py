"""The one way the project finds, inspects and loads a saved model of any task.

A run directory holds the model file of its task (the ``model_file`` of a
registered :class:`~csa_keras.tasks.Task`); :func:`resolve_model_path` turns
a run directory or a ``.keras`` file into that file. :func:`read_archive_config`
reads the model config stored in the ``.keras`` zip without Keras, so a
truncated or foreign file fails in one line before Keras reads it.
:func:`load_model` is the safe loader every command uses.

A ``.keras`` file is data from anywhere, so loading it must never run or
import code the file chooses:

* only the packages of the registered tasks (:func:`~csa_keras.tasks.model_packages`)
  are imported to register their layers, never a package a file names;
  a class of any other package is refused before Keras sees the file;
* ``config.json`` is read at most :data:`MAX_CONFIG_BYTES` and nested at
  most :data:`MAX_CONFIG_DEPTH` deep, both checked before it is parsed, so
  a gigabyte of whitespace or a hundred thousand nested lists is refused in
  bounded time and memory;
* the archive holds at most :data:`MAX_ARCHIVE_MEMBERS` members of at most
  :data:`MAX_ARCHIVE_BYTES` together, as its zip directory declares them
  (Keras extracts members to disk, and its own guard lets any member under
  256 MiB through);
* the weights file declares no more bytes of arrays than it holds
  (:func:`check_weights`, read from the HDF5 metadata, no array read): an
  HDF5 dataset may declare gigabytes it does not store, and Keras would
  allocate them;
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

Keras is imported inside :func:`load_model` only, so that the commands can
resolve and inspect a model file, and refuse a bad one in one clean line,
before TensorFlow loads (TensorFlow writes log lines on stderr as it does).
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.data.dataset import CANONICAL_CLASSES
from csa_keras.data.faces import preprocessing_for
from csa_keras.data.faces.decode import special_file
from csa_keras.tasks import Task, all_tasks, model_packages
from csa_keras.utils.artifacts import read_preprocessing

MAX_CONFIG_BYTES = 16 * 2**20
"""The largest ``config.json`` a ``.keras`` archive may hold (real models: a few hundred kB)."""

MAX_CONFIG_DEPTH = 128
"""The deepest nesting of lists and objects a ``config.json`` may have (real models: under 20)."""

ARCHIVE_MEMBERS = ("config.json", "model.weights.h5")
"""The files every Keras 3 ``.keras`` archive holds."""

WEIGHTS_MEMBER = "model.weights.h5"
"""The archive member holding the weights, an HDF5 file."""

MAX_ARCHIVE_MEMBERS = 256
"""The most members a ``.keras`` archive may hold (the project's models: 4)."""

MAX_ARCHIVE_BYTES = 2**30
"""The most bytes the members of a ``.keras`` archive may hold together, uncompressed, as the zip
declares them (the largest model of the project, a Voting ResNet of 11 M parameters: about 45 MB)."""

MAX_WEIGHTS_BYTES = 2**30
"""The most bytes of arrays a weights file may declare: 268 M float32 parameters."""

WEIGHTS_EXPANSION = 2
"""How many times the bytes it holds a weights file may declare in arrays (plus :data:`WEIGHTS_SLACK`).

Keras writes every variable whole and uncompressed, so a file it wrote
declares fewer bytes than it holds (the shipped CSA: 6.30 MB of arrays in a
6.34 MB file); HDF5 compression of trained weights gains little, which the
factor leaves room for. A file that declares more stores them as a fill
value or compressed zeros, and Keras would allocate every declared byte.
"""

WEIGHTS_SLACK = 2**20
"""Bytes of arrays any weights file may declare whatever its size (a tiny model's metadata outweighs its arrays)."""

MAX_WEIGHTS_OBJECTS = 100_000
"""The most groups and datasets a weights file may hold (a Voting ResNet: under 2,000)."""

PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "pretrained"
"""Where the package's pretrained models live: one run-like folder each (the task's model file,
``config.json``, ``metrics.json`` with the class names, ``MODEL_CARD.md``), named by the model."""

DEFAULT_MODEL = "csa_fer2013"
"""The pretrained model prediction uses when no model is given."""

PRETRAINED = PRETRAINED_ROOT / DEFAULT_MODEL
"""The folder of :data:`DEFAULT_MODEL`."""

_RUN_SUBFOLDER = re.compile(r"fold\d+|split\d+")
_DEPTH_CHUNK = 2**20


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


def _config_depth(raw: bytes) -> int:
    """How deep lists and objects nest in the JSON text ``raw``, brackets inside strings left out.

    Vectorised (NumPy over the bytes, a running sum in chunks) so that the
    largest config allowed is measured in well under a second and a few
    times its size in memory, whatever it holds.
    """
    text = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), np.uint8)
    outside = ~np.logical_xor.accumulate(text == ord('"'))
    steps = (outside & ((text == ord("[")) | (text == ord("{")))).astype(np.int8)
    steps -= outside & ((text == ord("]")) | (text == ord("}")))
    steps = steps[steps != 0]
    level = deepest = 0
    for start in range(0, len(steps), _DEPTH_CHUNK):
        running = np.cumsum(steps[start:start + _DEPTH_CHUNK], dtype=np.int64) + level
        deepest, level = max(deepest, int(running.max())), int(running[-1])
    return deepest


def _declared_members(path: str | os.PathLike) -> int | None:
    """The member count the end record of the zip ``path`` declares, read before the zip directory is
    parsed (a directory of millions of empty members would be parsed into as many objects);
    ``None`` where no end record is found (the zip reader then says what is wrong)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 22 - 0xFFFF))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    return int.from_bytes(tail[at + 10:at + 12], "little")  # 0xFFFF: a zip64 count, over any bound


def _check_members(path: str | os.PathLike, archive: zipfile.ZipFile) -> None:
    """Refuse an archive of more than :data:`MAX_ARCHIVE_MEMBERS` members or :data:`MAX_ARCHIVE_BYTES`."""
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ValueError(f"{path} holds {len(infos)} members, more than the {MAX_ARCHIVE_MEMBERS} "
                         "a model archive may have")
    total = 0
    for info in infos:
        total += info.file_size
        if total > MAX_ARCHIVE_BYTES:
            raise ValueError(f"{path} declares more than {MAX_ARCHIVE_BYTES} bytes uncompressed "
                             f"(at member {info.filename}, {info.file_size} bytes), more than "
                             "a model archive may hold")


def read_archive_config(path: str | os.PathLike) -> dict[str, Any]:
    """The model config stored in a ``.keras`` archive, read and bounded without Keras.

    A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and
    ``model.weights.h5``. A truncated or foreign file, a config larger than
    :data:`MAX_CONFIG_BYTES` or nested deeper than :data:`MAX_CONFIG_DEPTH`,
    or one that is not a JSON object, fails here in one ``ValueError`` line,
    and so does an archive of more than :data:`MAX_ARCHIVE_MEMBERS` members or
    :data:`MAX_ARCHIVE_BYTES` uncompressed, checked from the zip directory
    before any member is read.
    """
    try:
        count = _declared_members(path)
        if count is not None and count > MAX_ARCHIVE_MEMBERS:
            raise ValueError(f"{path} declares {count} members, more than the {MAX_ARCHIVE_MEMBERS} "
                             "a model archive may have")
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [name for name in ARCHIVE_MEMBERS if name not in names]
            if missing:
                raise ValueError(f"{path} is not a complete .keras model: it lacks {', '.join(missing)}")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ValueError(f"{path} holds a config.json of {info.file_size} bytes, more than "
                                 f"the {MAX_CONFIG_BYTES} a model config may have")
            _check_members(path, archive)
            with archive.open(info) as member:
                raw = member.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError):
        raise ValueError(f"{path} is not a Keras model file (a truncated or foreign archive, "
                         "not a Keras 3 .keras zip)") from None
    except OSError as error:
        raise ValueError(f"cannot read model {path}: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} holds a config.json larger than the {MAX_CONFIG_BYTES} bytes "
                         "a model config may have")
    depth = _config_depth(raw)
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{path} holds a config.json nested {depth} deep, deeper than the "
                         f"{MAX_CONFIG_DEPTH} a model config may be")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError(f"{path} holds an unreadable config.json (not JSON)") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a config.json that is not a model config "
                         f"(a JSON {type(config).__name__}, not an object)")
    return config


def _walk_weights(path: str | os.PathLike, weights) -> int:
    """The bytes of arrays the HDF5 file ``weights`` declares, read from its metadata only.

    Hard links are followed (a dataset reached twice is counted twice, as
    Keras reads it twice); a soft or external link, a dataset that is not
    of numbers, or more than :data:`MAX_WEIGHTS_OBJECTS` objects is refused.
    """
    import h5py

    total, seen, stack = 0, 0, [("", weights)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            seen += 1
            if seen > MAX_WEIGHTS_OBJECTS:
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} of more than {MAX_WEIGHTS_OBJECTS} "
                                 "groups and datasets, more than a model's weights have")
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose {where} is a "
                                 f"{type(link).__name__}, not weights")
            item = group[name]
            if isinstance(item, h5py.Group):
                stack.append((where, item))
                continue
            if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "biuf":
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose {where} is not an array "
                                 f"of numbers ({getattr(item, 'dtype', type(item).__name__)})")
            total += math.prod(item.shape or ()) * item.dtype.itemsize
            if total > MAX_WEIGHTS_BYTES:
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose dataset {where} "
                                 f"{tuple(item.shape)} {item.dtype} brings its arrays over the "
                                 f"{MAX_WEIGHTS_BYTES} bytes a model's weights may have")
    return total


def check_weights(path: str | os.PathLike) -> int:
    """Refuse, in one line, a weights file that declares more array bytes than it may (module
    docstring); return the bytes it declares.

    The HDF5 file is opened inside the zip, unread (its metadata is read
    through the member as a file), after :func:`read_archive_config` has
    bounded the member's size. Its arrays may declare at most
    :data:`MAX_WEIGHTS_BYTES`, and at most :data:`WEIGHTS_EXPANSION` times
    the bytes the file holds plus :data:`WEIGHTS_SLACK`.
    """
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            with archive.open(info) as member, h5py.File(member, "r") as weights:
                declared = _walk_weights(path, weights)
    except ValueError:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, EOFError, zlib.error, RuntimeError) as error:
        text = str(error).strip().splitlines()
        raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} that is not readable HDF5 "
                         f"({text[0] if text else type(error).__name__})") from None
    limit = min(MAX_WEIGHTS_BYTES, WEIGHTS_EXPANSION * info.file_size + WEIGHTS_SLACK)
    if declared > limit:
        raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} of {info.file_size} bytes that declares "
                         f"{declared} bytes of arrays, more than the {limit} it may "
                         f"({WEIGHTS_EXPANSION} times its size and {WEIGHTS_SLACK} more)")
    return declared


def registered_names(config: dict[str, Any]) -> set[str]:
    """The ``package>Class`` names of the registered (non-Keras) classes a saved config uses."""
    found: set[str] = set()
    stack: list[Any] = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("registered_name")
            if isinstance(name, str) and ">" in name:
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def import_task_packages() -> None:
    """Import the packages of every registered task, so that Keras knows their classes."""
    for package in model_packages():
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ValueError(f"the package {package} of a registered task cannot be imported "
                             f"({error})") from None


def load_model(path: str | os.PathLike):
    """A saved model of any registered task, loaded for inference (module docstring).

    ``path`` is a run directory or a ``.keras`` file. The model is loaded
    with ``compile=False`` and ``safe_mode=True`` after the registered tasks'
    packages, and nothing else, are imported; a class the file names that
    none of them registers is refused by name, and so is an archive or a
    weights file over its bounds (:func:`read_archive_config`,
    :func:`check_weights`). Every failure is a one-line ``ValueError``.
    """
    path = resolve_model_path(path)
    config = read_archive_config(path)
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
            data = json.loads((folder / name).read_text(encoding="utf-8"))
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


def class_names_for(model_path: str | os.PathLike, num_classes: int) -> list[str]:
    """The names of a saved model's ``num_classes`` classes.

    The run's ``metrics.json`` or recorded dataset names them; else the
    canonical eight when the model has eight classes, else ``class_0``,
    ``class_1``, ...
    """
    metrics = run_json(model_path, "metrics.json") or {}
    preprocessing = read_preprocessing(model_path) or {}
    for names in (preprocessing.get("class_names"), metrics.get("class_names"),
                  _dataset_summary(model_path).get("class_names")):
        if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
            return list(names)
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
