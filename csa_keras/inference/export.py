"""Export a trained run's model as a TensorFlow SavedModel, a TFLite flat buffer or an ONNX file, checked.

A run directory holds the model file of its task (``classifier.keras`` for
the CSA, ``model.keras`` for the Voting ResNet: the task's ``model_file``).
:func:`export_run` loads it with the project's safe loader
(:mod:`csa_keras.inference.loading`), writes it as an artifact
(:mod:`csa_keras.inference.artifacts`; ONNX: :mod:`csa_keras.inference.onnx_artifact`,
on ONNX Runtime), and checks the artifact rather than
trusting it: both classify the same images, the run's own test images where
they can be re-created (:mod:`csa_keras.inference.run_images`), and the
largest absolute difference of their class probabilities (as the task reads
them from the outputs) is recorded with both accuracies on those images
(when they are the run's, labelled), the artifact's size and the
single-image latency of both. The record is returned and written to
``export.json`` beside the artifact, one entry per artifact name, so
exports of several formats into one folder keep every record
(:mod:`csa_keras.inference.export_record`, which also writes the
command's summary lines).

A TFLite artifact may be quantised (``quantize``: ``float16`` weights, or
``int8`` calibrated on the run's training faces,
:mod:`csa_keras.inference.quantize`); it is then measured against the
float32 TFLite conversion of the same model too (accuracy, size, latency).

The artifact takes ``(batch, H, W, C)`` float32 images scaled to [0, 1],
named ``image``, and keeps every output of the Keras model (the Voting
ResNet's ``vote`` and ``crop_logits``: the crop logits give the other vote
for free).

Nothing is written before the run is checked, each refusal one
:class:`ExportError` line: the settings (:func:`check_settings`; ONNX
needs the ``onnx`` extra), the run's
``config.json`` and ``splits.json`` (JSON objects, :func:`check_run_files`),
the destination (not the model's file nor a folder holding it, nor another
run's directory or a file of one, a name its file system takes:
:func:`csa_keras.utils.paths.check_outputs`), then the model (:func:`load_run`:
it loads and belongs to a task; :func:`check_model`: it takes square grey or
colour images and turns one into class probabilities). The artifact is then written into a temporary folder beside
the destination, loaded and run there, and moved into place only when its
class probabilities are within :data:`PARITY_LIMIT` of the Keras model's
(a quantised artifact: when it keeps the Keras model's answers,
:func:`~csa_keras.inference.quantize.check_quantized`).
On any failure, Ctrl-C included, the temporary folder and any folder the
export created are removed: a destination holds a whole, checked artifact or
what it held before.

This module loads no TensorFlow itself: the refusals come in one clean line
first, and the artifact and test-image modules (TensorFlow) are imported
when an export runs.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.inference.export_record import probabilities_output, summary_lines, write_record
from csa_keras.inference.loading import ModelSource, load_model, pretrained_name
from csa_keras.inference.probabilities import class_probabilities
from csa_keras.inference.quantize import (
    CALIBRATION_IMAGES,
    MAX_CALIBRATION_IMAGES,
    QUANTIZE,
    accuracy_record,
    artifact_probabilities,
    calibration_faces,
    check_quantized,
)
from csa_keras.tasks import Task, task_of_model
from csa_keras.utils.files import FileTooLarge, read_json
from csa_keras.utils.messages import must, one_of
from csa_keras.utils.paths import check_outputs

__all__ = ["FORMATS", "PARITY_LIMIT", "ExportError", "check_model", "check_run_files", "check_settings",
           "default_output", "export_run", "load_run", "model_source", "summary_lines"]

FORMATS = ("savedmodel", "tflite", "onnx")
DEFAULT_MAX_IMAGES = 256
"""Test images the parity check takes at most, by default."""
FALLBACK_IMAGES = 32
"""Synthetic faces the parity check takes where the run's test images cannot be re-created."""
LATENCY_RUNS = 20
BATCH = 32
PARITY_LIMIT = 1e-3
"""The largest difference of class probabilities, artifact against Keras model, an export accepts.

Ten times the TFLite bound the tests assert and some 300 times the largest
difference measured (docs/prediction.md): beyond it the artifact computes
something else, and it is not moved into place.
"""


class ExportError(ValueError):
    """A run directory or a setting that no export can use (a one-line message)."""


def check_settings(format: str, max_images: int | None, latency_runs: int,
                   num_threads: int | None, quantize: str = "none",
                   calibration_images: int | None = None) -> None:
    """Refuse, in one line, settings no export can use, before any model is loaded."""
    if format not in FORMATS:
        raise ExportError(f"unknown format: format must be one of {', '.join(FORMATS)}. "
                          f"Received: format={format!r}")
    if quantize not in QUANTIZE:
        raise ExportError(one_of("quantize", QUANTIZE, quantize))
    if quantize != "none" and format != "tflite":
        raise ExportError(f"quantize applies to format='tflite' only. "
                          f"Received: quantize={quantize!r} with format={format!r}")
    if calibration_images is not None:
        if quantize != "int8":
            raise ExportError(f"calibration_images applies to quantize='int8' only. "
                              f"Received: calibration_images={calibration_images!r} with quantize={quantize!r}")
        if not isinstance(calibration_images, int) or calibration_images < 1:
            raise ExportError(must("calibration_images", "be >= 1", calibration_images))
        if calibration_images > MAX_CALIBRATION_IMAGES:
            raise ExportError(must("calibration_images", f"be at most {MAX_CALIBRATION_IMAGES}", calibration_images))
    for name, value in (("max_images", max_images or 0), ("latency_runs", latency_runs)):
        if not isinstance(value, int) or value < 0:
            raise ExportError(f"{name} must be >= 0. Received: {name}={value!r}")
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ExportError(f"num_threads must be >= 1. Received: num_threads={num_threads!r}")
    if format == "onnx":
        from csa_keras.inference.onnx_artifact import missing_module

        missing = missing_module()
        if missing is not None:
            raise ExportError(f"format='onnx' needs the onnx extra ({missing} is not installed): "
                              f"pip install 'csa-keras[onnx]'. Received: format={format!r}")


def model_source(model: str | os.PathLike | ModelSource) -> ModelSource:
    """What ``model`` names (a run directory, a ``.keras`` file or the name of a model in the box),
    resolved once and its archive read without loading it
    (:class:`~csa_keras.inference.loading.ModelSource`), or an :class:`ExportError`."""
    try:
        return ModelSource.resolve(model)
    except ValueError as error:
        raise ExportError(str(error)) from None


def load_run(source: ModelSource) -> tuple[Task, Any]:
    """The task and the loaded model of a resolved model source, or an :class:`ExportError`."""
    try:
        model = load_model(source)
        return task_of_model(model), model
    except ValueError as error:
        raise ExportError(str(error)) from None


def check_model(task: Task, model, model_path: Path) -> tuple[int, int, int]:
    """The model's input shape ``(size, size, channels)``, once one image went through it, or an :class:`ExportError`.

    The artifact takes the images the model takes and its parity check feeds
    it square grey or colour faces, so the model must take ``(batch, size,
    size, 1 or 3)`` images and its task must read class probabilities from
    its outputs on one of them: ``(1, K)``, finite, summing to 1.
    """
    shape = model.input_shape
    if (isinstance(shape, list) or len(shape) != 4 or shape[1] is None or shape[1] != shape[2]
            or shape[3] not in (1, 3)):
        raise ExportError(f"input_shape must be (batch, size, size, 1 or 3): square grey or colour images. "
                          f"Received: input_shape={shape} of {model_path}")
    input_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
    from csa_keras.inference.run_images import synthetic_images

    try:
        probabilities = np.asarray(class_probabilities(task, model.predict_on_batch(
            synthetic_images(input_shape, 1))), dtype=np.float64)
    except Exception as error:
        text = str(error).strip().splitlines()
        raise ExportError(f"{model_path} cannot classify an image of its input shape {input_shape}: "
                          f"{text[0] if text else type(error).__name__}") from None
    if (probabilities.ndim != 2 or len(probabilities) != 1 or not np.all(np.isfinite(probabilities))
            or abs(float(probabilities.sum()) - 1.0) > 1e-3):
        raise ExportError(f"{model_path} does not give class probabilities: one image gives an array of "
                          f"shape {probabilities.shape} summing to {float(np.nansum(probabilities)):.4g}")
    return input_shape


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, ``None`` when there is no such file, else an :class:`ExportError`."""
    if not path.is_file():
        return None
    try:
        body = read_json(path)
    except (OSError, ValueError) as error:
        if isinstance(error, FileTooLarge):
            raise ExportError(str(error)) from None
        raise ExportError(f"{path} must be a readable JSON file. Received: {type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}") from None
    if not isinstance(body, dict):
        raise ExportError(f"{path} must hold a JSON object. Received: a JSON {type(body).__name__}")
    return body


def check_run_files(run_dir: str | os.PathLike) -> None:
    """Refuse a run whose ``config.json`` or ``splits.json`` is not what a training run writes.

    The files may be missing (the parity check then takes built-in faces);
    when present, ``config.json`` must be a JSON object whose ``config`` and
    ``run`` are objects, and ``splits.json`` an object of splits, each an
    object with a ``test`` list. A value inside them that cannot re-create
    the data only sends the parity check to built-in faces.
    """
    run = Path(run_dir)
    config = _json_object(run / "config.json")
    for key in ("config", "run"):
        if config is not None and not isinstance(config.get(key, {}), dict):
            raise ExportError(f"{run / 'config.json'} must hold an object under {key!r}. "
                              f"Received: a JSON {type(config[key]).__name__}")
    splits = _json_object(run / "splits.json")
    if splits is not None:
        bad = next((name for name, split in splits.items()
                    if not isinstance(split, dict) or not isinstance(split.get("test"), list)), None)
        if bad is not None or not splits:
            raise ExportError(f"{run / 'splits.json'} must map each split to an object with a 'test' list. "
                              f"Received: {'no split' if not splits else f'split {bad!r}'}")


def default_output(run_dir: str | os.PathLike, model_path: Path, format: str, quantize: str = "none") -> Path:
    """``RUN_DIR/export/<model>_saved_model``, ``<model>.tflite``, ``<model>_<quantize>.tflite`` or ``<model>.onnx``;
    for a pretrained model of the package, ``export/<name>/...`` in the current folder (the
    package's folder is not written)."""
    stem = model_path.stem
    name = pretrained_name(run_dir)
    folder = Path("export") / name if name is not None else Path(run_dir) / "export"
    if format == "savedmodel":
        return folder / f"{stem}_saved_model"
    if format == "onnx":
        return folder / f"{stem}.onnx"
    return folder / (f"{stem}.tflite" if quantize == "none" else f"{stem}_{quantize}.tflite")


def _check_output(path: Path, format: str, model_path: Path, run_dir: str | os.PathLike) -> None:
    """Refuse, before anything is written, an artifact path the format cannot use or that touches the run."""
    if format in ("tflite", "onnx") and path.suffix != f".{format}":
        raise ExportError(f"output must be a path that ends in .{format} for format={format!r}. "
                          f"Received: output={path}")
    folders = ("output",) if format == "savedmodel" else ()
    run_files = [model_path, *(Path(run_dir) / name for name in ("config.json", "splits.json"))]
    try:
        check_outputs({"output": path}, {}, folders=folders, results=("output",), own=run_dir)
        if path.exists() and (path.is_dir() != (format == "savedmodel")):
            kind = "folder" if path.is_dir() else "file"
            raise ExportError(f"output must not be an existing {kind} for format={format!r}. "
                              f"Received: output={path}")
        if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
            raise ExportError(f"output must be a new folder or a SavedModel to replace, not a folder "
                              f"that holds something other than a SavedModel. Received: output={path}")
        check_outputs({"output": path}, {"model": [f for f in run_files if f.exists()]}, folders=folders)
    except ValueError as error:
        raise ExportError(str(error)) from None
    existing = next((folder for folder in path.parents if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ExportError(f"output must be a path under a folder. Received: output={path}, under the file {existing}")


@contextlib.contextmanager
def _staging(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path``, with any folder made for it; all removed at the end, whatever happens.

    Folders created on the way to ``path`` are removed again too when the
    export fails (they are left once the artifact is in place).
    """
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    placed = False
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".export-", suffix=".partial", dir=path.parent))
        except OSError as error:
            raise ExportError(f"cannot write beside output {path}: {error.strerror or error}") from None
        try:
            yield staging
            placed = True
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if not placed:
            for folder in missing:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _batched(predict: Callable[[np.ndarray], Any], images: np.ndarray):
    """``predict`` over ``images`` in batches; a dict output is joined name by name."""
    parts = [predict(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    return np.concatenate([np.asarray(p) for p in parts])


def _parity_images(run_dir, input_shape, max_images, log) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The run's test images and labels, or built-in synthetic faces without labels (said in ``log``)."""
    from csa_keras.inference.run_images import run_test_set, synthetic_images

    try:
        test = run_test_set(run_dir, input_shape, max_images)
        return test.images, test.labels, test.source
    except (ValueError, OSError, KeyError, IndexError, TypeError, AttributeError, StopIteration) as error:
        n = min(max_images or FALLBACK_IMAGES, FALLBACK_IMAGES)
        log(f"cannot re-create the run's test images ({error}); checking parity on {n} "
            f"built-in synthetic faces of shape {input_shape} instead")
        images = synthetic_images(input_shape, n)
        return images, None, f"{len(images)} built-in synthetic faces (fallback)"


def export_run(model: str | os.PathLike | ModelSource, format: str = "savedmodel",
               output: str | os.PathLike | None = None,
               max_images: int | None = DEFAULT_MAX_IMAGES,
               latency_runs: int = LATENCY_RUNS, num_threads: int | None = None,
               quantize: str = "none", calibration_images: int | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Export a model, check it against the Keras model, and record both.

    Args:
        model: a run directory of any registered task's training command, a
            ``.keras`` file (the folder holding it is taken as its run), or the
            name of a model in the box.
        format: ``"savedmodel"``, ``"tflite"`` or ``"onnx"``.
        output: the artifact's path (default :func:`default_output`).
        max_images: at most this many test images for the parity check
            (``None`` or 0: the whole first test split).
        latency_runs: single-image calls timed for each of the Keras model
            (``predict_on_batch``) and the artifact; 0 skips the timing.
        num_threads: TFLite interpreter or ONNX Runtime intra-op threads (``None``: its default).
        quantize: ``"none"`` (float32), ``"float16"`` or ``"int8"``; TFLite only.
        calibration_images: training faces int8 is calibrated on, at most
            (``None``: :data:`~csa_keras.inference.quantize.CALIBRATION_IMAGES`); int8 only.
        log: where the one-line messages go.

    Returns the record written to ``export.json`` beside the artifact:
    ``task``, ``format``, ``quantize``, ``artifact``, ``artifact_bytes``,
    ``artifact_mb``, ``keras_bytes``, ``outputs``, ``parity_images``,
    ``parity_source``, ``max_abs_diff`` (class probabilities),
    ``argmax_agreement``, ``accuracy`` (``{"images", "keras", "artifact"}``
    on the run's labelled test images, ``None`` on the synthetic fallback),
    for a model with named outputs ``max_abs_diff_<output>`` of each and
    ``probabilities_output``, the output that gives the class probabilities
    (read by the LiteRT runtime, :mod:`csa_keras.inference.litert`), and
    ``latency_ms`` (``{"keras", "artifact", "runs"}``) when timed. A
    quantised artifact adds ``float32_bytes``, ``size_ratio``,
    ``clear_changes``, the float32 TFLite model's accuracy and latency
    (``"float32"``), ``drop_points``,
    ``goal_points`` and ``within_goal`` in ``accuracy``, and for int8
    ``calibration`` (``{"images", "source", "fallback"}``). A model saved
    under a mixed precision policy is exported to TFLite or ONNX, and
    compared, as its float32 copy (``keras_float32_copy``); an ONNX record's
    ``versions`` add tf2onnx, onnx and onnxruntime.

    Raises :class:`ExportError`, before anything is written, for a setting,
    model, run file or destination it cannot use (module docstring), and
    after writing into its temporary folder when the conversion fails or
    the artifact differs from the Keras model by more than
    :data:`PARITY_LIMIT` (a quantised one: when
    :func:`~csa_keras.inference.quantize.check_quantized` refuses it); on
    any failure the destination is left as it was.
    """
    check_settings(format, max_images, latency_runs, num_threads, quantize, calibration_images)
    source = model_source(model)
    model_path, run_dir = source.path, source.run_dir
    check_run_files(run_dir)
    path = Path(output) if output is not None else default_output(run_dir, model_path, format, quantize)
    _check_output(path, format, model_path, run_dir)
    task, model = load_run(source)
    input_shape = check_model(task, model, model_path)
    from csa_keras.inference import artifacts

    images, labels, source = _parity_images(run_dir, input_shape, max_images, log)
    quantized = quantize != "none"
    calibration, calibrated = None, {}
    if quantize == "int8":
        calibration, record = calibration_faces(run_dir, input_shape, calibration_images or CALIBRATION_IMAGES, log)
        calibrated = {"calibration": record}
    reference = artifacts.float32_model(model) if format != "savedmodel" else model
    with _staging(path) as staging:
        staged, float32_file = staging / "artifact", staging / "float32.tflite"
        if format == "savedmodel":
            artifacts.write_saved_model(model, staged)
            artifact = artifacts.saved_model_predictor(staged)
        elif format == "onnx":
            from csa_keras.inference import onnx_artifact

            try:
                onnx_artifact.write_onnx(reference, staged)
            except ValueError as error:
                raise ExportError(f"{error}; nothing was written to {path}") from None
            artifact = onnx_artifact.onnx_predictor(staged, num_threads)
        else:
            try:
                artifacts.write_tflite(reference, staged, scratch=staging, quantize=quantize,
                                       calibration=calibration, float32_path=float32_file if quantized else None)
            except ValueError as error:
                raise ExportError(f"{error}; nothing was written to {path}") from None
            artifact = artifacts.tflite_predictor(staged, num_threads)
        keras_predict = artifacts.keras_predictor(reference)
        keras_out = _batched(keras_predict, images)
        artifact_out = _batched(artifact, images)
        p_keras = class_probabilities(task, keras_out)
        p_artifact = (artifact_probabilities if quantized else class_probabilities)(task, artifact_out)
        difference = float(np.max(np.abs(p_keras - p_artifact)))
        p_float32 = float32_predict = None
        changed = {}
        if quantized:
            float32_predict = artifacts.tflite_predictor(float32_file, num_threads)
            p_float32 = class_probabilities(task, _batched(float32_predict, images))
            try:
                changed = {"clear_changes": check_quantized(quantize, p_keras, p_artifact, source)}
            except ValueError as error:
                raise ExportError(f"{error}; nothing was written to {path}") from None
        elif not math.isfinite(difference) or difference > PARITY_LIMIT:
            raise ExportError(f"the {format} artifact does not match the Keras model on {source}: "
                              f"max |p_artifact - p_keras| = {difference:.3g}, more than {PARITY_LIMIT:g}; "
                              f"nothing was written to {path}")
        per_output = {}
        if isinstance(keras_out, dict):
            per_output = {f"max_abs_diff_{name}": float(np.max(np.abs(keras_out[name] - artifact_out[name])))
                          for name in sorted(keras_out)}
            per_output["probabilities_output"] = probabilities_output(keras_out, p_keras)
        latency = {}
        if latency_runs:
            timed = {"keras": keras_predict, "artifact": artifact, "float32": float32_predict}
            latency = {"latency_ms": {
                **{name: round(artifacts.median_latency_ms(predict, images[:1], latency_runs), 3)
                   for name, predict in timed.items() if predict is not None},
                "runs": int(latency_runs),
            }}
        size = artifacts.artifact_bytes(staged)
        sizes = {}
        if quantized:
            float32_size = artifacts.artifact_bytes(float32_file)
            sizes = {"float32_bytes": float32_size, "size_ratio": round(size / float32_size, 4)}
        artifacts.move_into_place(staged, path, staging / "replaced")
    accuracy = accuracy_record(labels, p_keras, p_artifact, p_float32)
    if accuracy is not None and not accuracy.get("within_goal", True):
        log(f"the {quantize} artifact is {accuracy['drop_points']:.1f} points less accurate than the Keras "
            f"model on {accuracy['images']} test images (goal: within {accuracy['goal_points']:g})")
    record: dict[str, Any] = {
        "task": task.name,
        "model": model_path.name,
        "format": format,
        "quantize": quantize,
        "artifact": str(path.resolve()),
        "artifact_bytes": size,
        "artifact_mb": round(size / 1e6, 3),
        **sizes,
        "keras_bytes": model_path.stat().st_size,
        "input_shape": [None, *input_shape],
        "outputs": sorted(keras_out) if isinstance(keras_out, dict) else ["probabilities"],
        **({"keras_float32_copy": True} if reference is not model else {}),
        **calibrated,
        "parity_images": len(images),
        "parity_source": source,
        "max_abs_diff": difference,
        "argmax_agreement": float(np.mean(p_keras.argmax(1) == p_artifact.argmax(1))),
        **changed,
        "accuracy": accuracy,
        **per_output,
        **latency,
    }
    record["versions"] = artifacts.versions()
    if format == "onnx":
        record["versions"].update(onnx_artifact.versions())
    record["export_json"] = str(write_record(path, record))
    return record
