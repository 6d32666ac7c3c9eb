"""The ``.keras`` files the project writes: loadable by plain Keras, and saying how to use them.

Two promises hold for every model file a training run, the comparison or the
packer writes (through :func:`save_model`):

- **Plain Keras loads it.** A layer may compute differently during training
  than Keras's own layer while holding the same variables and config (the
  fused :class:`~csa_keras.layers.BatchNorm`); such a layer names the Keras
  class it stands for in its ``saved_as`` attribute, and the file holds that
  class. ``keras.models.load_model(path)`` then needs nothing of this
  project for a CSA (a Voting ResNet needs ``import voting_resnet`` for its
  crop, regroup and voting layers).
- **The file tells how to use it.** Beside Keras's own members the archive
  holds ``preprocessing.json``: the class names in output order and the input
  preprocessing (image size, channels, pixel scale, how the face is cut), so the
  file alone is enough to classify a face::

      import json, zipfile
      preprocessing = json.loads(zipfile.ZipFile(path).read("preprocessing.json"))

  Keras ignores the extra member when loading.

Keras is imported inside the functions, so that commands importing this
module stay cheap until they save or load a model.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from csa_keras.utils.files import commit, temporary_name

PREPROCESSING_MEMBER = "preprocessing.json"
"""The archive member holding a model's class names and input preprocessing."""

MAX_PREPROCESSING_BYTES = 1 << 20
"""A ``preprocessing.json`` larger than this is not read (a real one is a few hundred bytes)."""


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def portable(model):
    """``model`` itself, or a copy in which every layer with ``saved_as`` is that Keras class.

    The copy has the same layer names, configs and weights (set layer by
    layer, by name); a compiled model's compile config comes along, its
    optimizer state does not (a saved artifact is for use and fine-tuning,
    training resumes from the run's own state).
    """
    if not any(getattr(layer, "saved_as", None) for layer in _layers(model)):
        return model
    import keras

    def clone(layer):
        cls = getattr(layer, "saved_as", None) or layer.__class__
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = {layer.name: layer for layer in _layers(model)}
    for layer in _layers(copy):
        if layer.weights and not hasattr(layer, "layers"):
            layer.set_weights(originals[layer.name].get_weights())
    if getattr(model, "compiled", False):
        config = model.get_compile_config()
        if config:
            copy.compile_from_config(config)
    return copy


def save_model(model, path: str | os.PathLike, preprocessing: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as plain Keras (:func:`portable`) with ``preprocessing`` in the archive, atomically.

    ``model.save`` writes a temporary ``.keras`` name, ``preprocessing.json`` is
    added to that archive, and the file is renamed into place, so a crash
    leaves any earlier file whole.
    """
    path = Path(path)
    tmp = temporary_name(path)
    portable(model).save(tmp)
    if preprocessing is not None:
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(PREPROCESSING_MEMBER, json.dumps(preprocessing, indent=2) + "\n")
    return commit(tmp, path)


def read_preprocessing(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``preprocessing.json`` of a ``.keras`` archive, ``None`` when it has none or it is unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(PREPROCESSING_MEMBER)
            if info.file_size > MAX_PREPROCESSING_BYTES:
                return None
            data = json.loads(archive.read(info).decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return data if isinstance(data, dict) else None
