"""Serving artifacts of a Keras model: written, sized, run and timed.

- ``savedmodel``: a SavedModel directory written by
  ``keras.Model.export(format="tf_saved_model")``, served by TensorFlow
  Serving or ``tf.saved_model.load(path).serve(images)``;
- ``tflite``: a float32 ``.tflite`` file converted from that SavedModel by
  ``tf.lite.TFLiteConverter`` (no quantisation, so its probabilities stay
  within float rounding of the Keras model's).

Each is written under a temporary name and renamed, so a killed export never
leaves half an artifact. The predictors run an artifact (or the Keras model)
on ``(batch, H, W, C)`` float32 images and return one array, or a dict by
output name for a model with several outputs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from csa_keras.utils.files import temporary_name


def write_saved_model(model, path: str | os.PathLike) -> Path:
    """``model`` as a SavedModel directory at ``path`` (replacing one already there)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", verbose=False)
    if path.is_dir():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def write_tflite(model, path: str | os.PathLike) -> Path:
    """``model`` as a float32 ``.tflite`` file, converted from a temporary SavedModel."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch:
        saved = write_saved_model(model, Path(scratch) / "saved_model")
        flat = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    tmp = temporary_name(path)
    tmp.write_bytes(flat)
    os.replace(tmp, path)
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
