"""Serving artifacts of a Keras model: written, sized, run and timed.

- ``savedmodel``: a SavedModel directory written by
  ``keras.Model.export(format="tf_saved_model")``, served by TensorFlow
  Serving or ``tf.saved_model.load(path).serve(images)``;
- ``tflite``: a float32 ``.tflite`` file converted from that SavedModel by
  ``tf.lite.TFLiteConverter`` (no quantisation, so its probabilities stay
  within float rounding of the Keras model's).

The writers write where they are told; an export writes into a temporary
folder beside the destination and moves the artifact into place only once it
has been checked (:func:`csa_keras.inference.export.export_run`), so a
failed or killed export never leaves half an artifact, or an unchecked one.
The predictors run an artifact (or the Keras model) on ``(batch, H, W, C)``
float32 images and return one array, or a dict by output name for a model
with several outputs.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def write_saved_model(model, path: str | os.PathLike) -> Path:
    """``model`` as a SavedModel directory at ``path``, which must not exist yet."""
    path = Path(path)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def write_tflite(model, path: str | os.PathLike, scratch: str | os.PathLike | None = None) -> Path:
    """``model`` as a float32 ``.tflite`` file, converted from a SavedModel written in ``scratch``.

    ``scratch``: a folder for that SavedModel, removed with it afterwards
    (default: one of the system's temporary folders).
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        saved = write_saved_model(model, Path(folder) / "saved_model")
        flat = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    path.write_bytes(flat)
    return path


def move_into_place(staged: str | os.PathLike, path: str | os.PathLike, attic: str | os.PathLike) -> Path:
    """Rename the artifact ``staged`` to ``path``, on the same file system; one already there is replaced.

    A file is renamed over the old one (atomic). A SavedModel directory
    already at ``path`` is first moved to ``attic`` (a name in the same
    temporary folder, which the caller removes) and put back if the rename
    fails, so ``path`` always holds a whole artifact, old or new.
    """
    staged, path, attic = Path(staged), Path(path), Path(attic)
    if not staged.is_dir() or not path.is_dir():
        os.replace(staged, path)
        return path
    os.replace(path, attic)
    try:
        os.replace(staged, path)
    except BaseException:
        os.replace(attic, path)
        raise
    return path


def artifact_bytes(path: str | os.PathLike) -> int:
    """Size of a file, or of every file under a SavedModel directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def saved_model_predictor(path: str | os.PathLike) -> Callable[[np.ndarray], Any]:
    """A function from images to the SavedModel's outputs (its ``serve`` endpoint)."""
    served = tf.saved_model.load(str(path))

    def predict(images: np.ndarray):
        outputs = served.serve(tf.constant(images, tf.float32))
        if isinstance(outputs, dict):
            return {k: v.numpy() for k, v in outputs.items()}
        return outputs.numpy()

    return predict


def _interpreter(model_path: str, num_threads: int | None):
    """The LiteRT interpreter where ``ai_edge_litert`` is installed (optional), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=model_path, num_threads=num_threads)


def tflite_predictor(path: str | os.PathLike, num_threads: int | None = None
                     ) -> Callable[[np.ndarray], Any]:
    """A function from images to the TFLite model's outputs (its ``serving_default`` signature).

    The signature runner resizes the input to each call's batch. Outputs come
    back as one array for a single-output model and as a dict by output name
    otherwise, as the SavedModel's do.
    """
    runner = _interpreter(str(path), num_threads).get_signature_runner("serving_default")
    (input_name,) = runner.get_input_details()

    def predict(images: np.ndarray):
        outputs = runner(**{input_name: np.ascontiguousarray(images, dtype=np.float32)})
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    return predict


def keras_predictor(model) -> Callable[[np.ndarray], Any]:
    """A function from images to a Keras model's outputs (``predict_on_batch``) as NumPy."""
    def predict(images: np.ndarray):
        outputs = model.predict_on_batch(images)
        if isinstance(outputs, dict):
            return {k: np.asarray(v) for k, v in outputs.items()}
        return np.asarray(outputs)

    return predict


def median_latency_ms(predict: Callable[[np.ndarray], Any], image: np.ndarray, runs: int,
                      warmup: int = 3) -> float:
    """Median wall time of ``runs`` single-image calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        predict(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def versions() -> dict[str, str]:
    """The TensorFlow and Keras versions that wrote and ran the artifacts."""
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
