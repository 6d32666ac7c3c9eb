"""Serving artifacts of a Keras model: written, sized, run and timed.

- ``savedmodel``: a SavedModel directory written by
  ``keras.Model.export(format="tf_saved_model")``, served by TensorFlow
  Serving or ``tf.saved_model.load(path).serve(images)``;
- ``tflite``: a ``.tflite`` file converted from that SavedModel by
  ``tf.lite.TFLiteConverter``: float32 (no quantisation, so its probabilities
  stay within float rounding of the Keras model's), or quantised
  (:data:`QUANTIZE`): ``float16`` weights, or ``int8`` full-integer
  post-training quantisation calibrated on the images it is given, with
  float32 input and output either way.

TFLite has no bfloat16 kernels, so a model saved under a mixed precision
policy is converted from :func:`float32_model`, a copy with the same weights
that computes in float32. The converter's failures (an op it cannot lower, a
quantisation it cannot calibrate) raise a one-line ``ValueError``, its
diagnostics on file descriptor 2 kept out of the command's stderr.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from csa_keras.inference.quantize import QUANTIZE
from csa_keras.utils.quiet import stderr_filtered


def write_saved_model(model, path: str | os.PathLike) -> Path:
    """``model`` as a SavedModel directory at ``path``, which must not exist yet."""
    path = Path(path)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def _layers(model) -> Iterator[Any]:
    """Every layer of ``model``, those of nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def float32_model(model):
    """``model`` itself when every layer computes in float32, else a float32 copy with its weights.

    A model trained under ``mixed_bfloat16`` or ``mixed_float16`` keeps
    float32 weights and computes in 16 bits; TFLite lowers no bfloat16
    convolution, so such a model is converted (and checked) as this copy.
    """
    if all(layer.compute_dtype == "float32" for layer in _layers(model)):
        return model

    def in_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=in_float32, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _representative(calibration: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative dataset: the calibration images one at a time, as float32."""
    images = np.ascontiguousarray(calibration, dtype=np.float32)

    def dataset():
        for image in images:
            yield [image[None]]

    return dataset


def tflite_converter(saved_model: str | os.PathLike, quantize: str = "none",
                     calibration: np.ndarray | None = None):
    """A ``tf.lite.TFLiteConverter`` for a SavedModel, set up for ``quantize`` (:data:`QUANTIZE`).

    ``float16`` stores the weights in float16 (``Optimize.DEFAULT`` with
    ``supported_types=[tf.float16]``), dequantised to float32 when the model
    loads. ``int8`` quantises weights and activations to int8, the activation
    ranges calibrated on ``calibration`` (images as the model takes them);
    only int8 builtin ops are allowed, so a model with an op that has no int8
    kernel fails to convert rather than falling back to float quietly. Input
    and output stay float32: the artifact takes and gives what the float32
    one does, and the (de)quantisation at both ends costs next to nothing.
    """
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}. Received: quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("calibration must hold images for quantize='int8'. Received: no images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    return converter


def _reason(error: BaseException) -> str:
    """The line of a converter error that says why: the ops it cannot lower, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = [line for line in lines if "not supported" in line or line.startswith("TF Select ops")]
    return ("; ".join(why[:2]) or (lines[0][:300] if lines else type(error).__name__)).rstrip(".")


def write_tflite(model, path: str | os.PathLike, scratch: str | os.PathLike | None = None,
                 quantize: str = "none", calibration: np.ndarray | None = None,
                 float32_path: str | os.PathLike | None = None) -> Path:
    """``model`` as a ``.tflite`` file, converted from a SavedModel written in ``scratch``.

    ``scratch``: a folder for that SavedModel, removed with it afterwards
    (default: one of the system's temporary folders). ``quantize`` and
    ``calibration``: as :func:`tflite_converter`. ``float32_path``: also
    write the float32 conversion there, from the same SavedModel (the
    reference a quantised artifact is measured against). The model is
    converted as :func:`float32_model`. A conversion that fails is a one-line
    ``ValueError``, and nothing is written to ``path``.
    """
    path = Path(path)
    model = float32_model(model)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        saved = write_saved_model(model, Path(folder) / "saved_model")
        jobs = [(quantize, path)] + ([("none", Path(float32_path))] if float32_path is not None else [])
        flats = []
        for mode, _ in jobs:
            converter = tflite_converter(saved, mode, calibration)
            try:
                with stderr_filtered():  # the converter's MLIR dumps; failures reach the exception
                    flats.append(converter.convert())
            except Exception as error:  # the converter raises ConverterError, RuntimeError, ValueError
                raise ValueError(f"the TFLite converter cannot convert the model with quantize={mode!r}: "
                                 f"{_reason(error)}") from None
    for (_, target), flat in zip(jobs, flats):
        target.write_bytes(flat)
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
