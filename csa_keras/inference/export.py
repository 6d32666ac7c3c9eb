"""Export a trained run's model as a TensorFlow SavedModel or a TFLite flat buffer.

A run directory (SPEC §5) holds ``classifier.keras`` (CSA) or ``model.keras``
(Voting ResNet). :func:`export_run` writes that model as

- ``savedmodel``: a SavedModel directory written by
  ``keras.Model.export(format="tf_saved_model")``, served by TensorFlow
  Serving or ``tf.saved_model.load(path).serve(images)``;
- ``tflite``: a float32 ``.tflite`` file converted from that SavedModel by
  ``tf.lite.TFLiteConverter`` (no quantisation, so its probabilities stay
  within float rounding of the Keras model's).

Every export is checked, not trusted: the artifact and the Keras model
classify the same images, the run's own test images where they can be
re-created from its ``config.json`` and ``splits.json``, and the largest
absolute difference of their class probabilities is recorded with the
artifact's size and the single-image latency of both. The record is
returned and written to ``export.json`` beside the artifact, one entry per
artifact name, so exports of both formats into one folder keep both records.

The artifact takes ``(batch, H, W, C)`` float32 images scaled to [0, 1],
named ``image``. The CSA's output is its softmax; the Voting ResNet's are
``vote`` (the ``(batch, K)`` class distribution of its soft or hard vote)
and ``crop_logits`` (``(batch, V, K)``), both kept because the crop logits
give the other vote for free.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMATS = ("savedmodel", "tflite")
MODEL_FILES = {"classifier.keras": "csa", "model.keras": "voting_resnet"}
PROJECT_PACKAGES = ("csa_keras", "voting_resnet")
DEFAULT_MAX_IMAGES = 256
FALLBACK_IMAGES = 32
LATENCY_RUNS = 20
BATCH = 32


class ExportError(ValueError):
    """A run directory or an argument that no export can use (a one-line message)."""


def find_model(run_dir: str | os.PathLike) -> tuple[str, Path]:
    """The task (``"csa"`` or ``"voting_resnet"``) and the model file of a run directory."""
    run = Path(run_dir)
    if not run.exists():
        raise ExportError(f"{run_dir}: no such run directory")
    if not run.is_dir():
        raise ExportError(f"{run_dir} is not a run directory")
    for name, task in MODEL_FILES.items():
        if (run / name).is_file():
            return task, run / name
    raise ExportError(f"{run_dir}: no classifier.keras (CSA) or model.keras (Voting ResNet) in it")


def _custom_modules(path: Path) -> set[str]:
    """The modules of this project that define the classes a ``.keras`` file names."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ExportError(f"{path} is not a Keras model file ({error.__class__.__name__})") from None
    modules: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and module.split(".")[0] in PROJECT_PACKAGES:
                modules.add(module)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return modules


def load_model(path: str | os.PathLike):
    """A saved model of either task, loaded without ``custom_objects``.

    The Voting ResNet's layers are registered with Keras when their module is
    imported. The modules are the ones the file itself names, restricted to
    this project's packages, so this package needs no import of
    :mod:`voting_resnet` (which builds on it, SPEC §1). Keras's ``safe_mode``
    stays on: a file cannot run code of its own when it is loaded.
    """
    import keras

    path = Path(path)
    for module in sorted(_custom_modules(path)):
        importlib.import_module(module)
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any unreadable model is a user error here
        raise ExportError(f"cannot load {path}: {error.__class__.__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}") from None


def probabilities(outputs) -> np.ndarray:
    """The class distribution of a model output: the CSA's softmax or the Voting ResNet's vote."""
    if isinstance(outputs, dict):
        outputs = outputs["vote"]
    return np.asarray(outputs, dtype=np.float32)


def _config_of(run: Path) -> dict[str, Any]:
    path = run / "config.json"
    if not path.is_file():
        raise ExportError(f"{run}: no config.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _run_config(settings: dict[str, Any]):
    """The settings every run shares (data, protocol, seed), as a :class:`RunConfig`."""
    from csa_keras.training.config import RunConfig

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kept = {k: v for k, v in settings.items() if k in fields}
    kept["reader_options"] = tuple(tuple(pair) for pair in kept.get("reader_options") or ())
    return RunConfig(**kept)


def run_test_images(run_dir: str | os.PathLike, input_shape: tuple[int, int, int],
                    max_images: int | None = DEFAULT_MAX_IMAGES) -> tuple[np.ndarray, str]:
    """The first split's test images of a run, re-created from its ``config.json``.

    The dataset is loaded as the run loaded it (the same reader settings, or
    the built-in data with the same seed and size), checked against the
    dataset summary the run recorded, and indexed by the first split of
    ``splits.json`` (CSA) or of the protocol re-applied with the run's seed
    (Voting ResNet runs record no ``splits.json``; the splitters are
    deterministic). Returns ``[0, 1]`` float32 images, at most
    ``max_images`` (``None`` or 0: all), and a description of where they
    came from. Raises ``ValueError`` when the data cannot be re-created.
    """
    from csa_keras.data.protocols import dedupe, make_splits
    from csa_keras.csa.training import load_data
    from csa_keras.training.pipeline import as_channels

    run = Path(run_dir)
    body = _config_of(run)
    settings = body.get("config", {})
    recorded = body.get("run", {}).get("dataset", {})
    config = _run_config(settings)
    if config.data is not None and not os.path.exists(config.data):
        raise ValueError(f"its dataset {config.data} is not there")
    dataset = load_data(config, progress=False, colour=input_shape[-1] == 3)
    images = as_channels(dataset.images, input_shape[-1])
    if tuple(images.shape[1:3]) != tuple(input_shape[:2]):
        raise ValueError(f"its dataset re-creates {images.shape[1]}x{images.shape[2]} images, "
                         f"the model takes {input_shape[0]}x{input_shape[1]}")
    if recorded and (recorded.get("n_images") != len(dataset)
                     or list(recorded.get("image_shape", [])[:2]) != list(images.shape[1:3])):
        raise ValueError(f"config.json re-creates {len(dataset)} images of "
                         f"{list(images.shape[1:])}, the run recorded {recorded.get('n_images')} "
                         f"of {recorded.get('image_shape')}")
    splits_path = run / "splits.json"
    if splits_path.is_file():
        name, split = next(iter(json.loads(splits_path.read_text(encoding="utf-8")).items()))
        test = np.asarray(split["test"], dtype=np.int64)
    else:
        protocol = body.get("run", {}).get("protocol_used", config.protocol)
        first = make_splits(dataset, protocol, folds=config.folds, seed=config.seed,
                            val_fraction=config.val_fraction,
                            val_per_class=settings.get("val_per_class"),
                            test_size=config.test_size)[0]
        if config.dedupe:
            first, _ = dedupe(first, dataset.images)
        name, test = first.name, np.asarray(first.test, dtype=np.int64)
    if len(test) == 0 or test.max() >= len(dataset):
        raise ValueError("its recorded test indices do not fit the re-created dataset")
    if max_images:
        test = test[:max_images]
    x = images[test]
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return x, f"{len(test)} test images of split {name!r} of the run's dataset ({dataset.name})"


def synthetic_images(input_shape: tuple[int, int, int], n: int = FALLBACK_IMAGES) -> np.ndarray:
    """``n`` built-in synthetic faces of the model's input shape, as [0, 1] float32."""
    from csa_keras.data.synthetic import make_synthetic_dataset

    size, channels = int(input_shape[0]), int(input_shape[-1])
    subjects = max(1, math.ceil(n / 7))
    faces = make_synthetic_dataset(seed=0, n_subjects=subjects, images_per_class=1, size=size,
                                   colour=channels == 3)
    return faces.scaled()[:n]


def _batched(predict: Callable[[np.ndarray], Any], images: np.ndarray):
    """``predict`` over ``images`` in batches; a dict output is joined name by name."""
    parts = [predict(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    return np.concatenate([np.asarray(p) for p in parts])


def saved_model_predictor(path: str | os.PathLike) -> Callable[[np.ndarray], Any]:
    """A function from images to the SavedModel's outputs (its ``serve`` endpoint)."""
    import tensorflow as tf

    served = tf.saved_model.load(str(path))

    def predict(images: np.ndarray):
        outputs = served.serve(tf.constant(images, tf.float32))
        if isinstance(outputs, dict):
            return {k: v.numpy() for k, v in outputs.items()}
        return outputs.numpy()

    return predict


def _interpreter(model_path: str, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

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


def _keras_predictor(model) -> Callable[[np.ndarray], Any]:
    def predict(images: np.ndarray):
        outputs = model.predict_on_batch(images)
        if isinstance(outputs, dict):
            return {k: np.asarray(v) for k, v in outputs.items()}
        return np.asarray(outputs)

    return predict


def median_latency_ms(predict: Callable[[np.ndarray], Any], image: np.ndarray,
                      runs: int = LATENCY_RUNS, warmup: int = 3) -> float:
    """Median wall time of ``runs`` single-image calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        predict(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def artifact_bytes(path: str | os.PathLike) -> int:
    """Size of a file, or of every file under a SavedModel directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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
    import tensorflow as tf

    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch:
        saved = write_saved_model(model, Path(scratch) / "saved_model")
        flat = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    tmp.write_bytes(flat)
    os.replace(tmp, path)
    return path


def default_output(run_dir: str | os.PathLike, model_path: Path, format: str) -> Path:
    """``RUN_DIR/export/<model>_saved_model`` or ``RUN_DIR/export/<model>.tflite``."""
    stem = model_path.stem
    folder = Path(run_dir) / "export"
    return folder / (f"{stem}_saved_model" if format == "savedmodel" else f"{stem}.tflite")


def _record(path: Path, record: dict[str, Any]) -> Path:
    from csa_keras.utils import files

    report = path.parent / "export.json"
    records: dict[str, Any] = {}
    if report.is_file():
        try:
            records = json.loads(report.read_text(encoding="utf-8"))
        except ValueError:
            records = {}
    records[path.name] = record
    return files.write_json(report, records)


def export_run(run_dir: str | os.PathLike, format: str = "savedmodel",
               output: str | os.PathLike | None = None,
               max_images: int | None = DEFAULT_MAX_IMAGES,
               latency_runs: int = LATENCY_RUNS, num_threads: int | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Export a run's model, check it against the Keras model, and record both.

    Args:
        run_dir: a run directory of ``csa_keras.train`` or ``voting_resnet.train``.
        format: ``"savedmodel"`` or ``"tflite"``.
        output: the artifact's path (default :func:`default_output`).
        max_images: at most this many test images for the parity check
            (``None`` or 0: the whole first test split).
        latency_runs: single-image calls timed for each of the Keras model
            (``predict_on_batch``) and the artifact; 0 skips the timing.
        num_threads: TFLite interpreter threads (``None``: its default).
        log: where the one-line messages go.

    Returns the record written to ``export.json`` beside the artifact:
    ``task``, ``format``, ``artifact``, ``artifact_bytes``, ``artifact_mb``,
    ``keras_bytes``, ``outputs``, ``parity_images``, ``parity_source``,
    ``max_abs_diff`` (class probabilities), ``argmax_agreement``, for the
    Voting ResNet ``max_abs_diff_crop_logits``, and ``latency_ms``
    (``{"keras", "artifact", "runs"}``) when timed.

    Raises :class:`ExportError` for a run directory or setting it cannot use.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: choose savedmodel or tflite")
    task, model_path = find_model(run_dir)
    model = load_model(model_path)
    input_shape = tuple(int(d) for d in model.input_shape[1:])
    path = Path(output) if output is not None else default_output(run_dir, model_path, format)
    if format == "tflite" and path.suffix != ".tflite":
        raise ExportError(f"--output {path}: a TFLite model file ends in .tflite")
    if path.exists() and (path.is_dir() != (format == "savedmodel")):
        raise ExportError(f"--output {path} exists and is a {'folder' if path.is_dir() else 'file'}")
    if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
        raise ExportError(f"--output {path} is a folder that holds something other than a SavedModel")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create {path.parent}: {error.strerror}") from None

    try:
        images, source = run_test_images(run_dir, input_shape, max_images)
    except (ValueError, OSError, KeyError, StopIteration) as error:
        n = min(max_images or FALLBACK_IMAGES, FALLBACK_IMAGES)
        log(f"cannot re-create the run's test images ({error}); checking parity on {n} "
            f"built-in synthetic faces of shape {input_shape} instead")
        images = synthetic_images(input_shape, n)
        source = f"{len(images)} built-in synthetic faces (fallback)"

    if format == "savedmodel":
        write_saved_model(model, path)
        artifact = saved_model_predictor(path)
    else:
        write_tflite(model, path)
        artifact = tflite_predictor(path, num_threads)
    keras_predict = _keras_predictor(model)

    keras_out = _batched(keras_predict, images)
    artifact_out = _batched(artifact, images)
    p_keras, p_artifact = probabilities(keras_out), probabilities(artifact_out)
    record: dict[str, Any] = {
        "task": task,
        "model": model_path.name,
        "format": format,
        "artifact": str(path.resolve()),
    }
    extra = {}
    if isinstance(keras_out, dict):
        extra["max_abs_diff_crop_logits"] = float(np.max(np.abs(
            keras_out["crop_logits"] - artifact_out["crop_logits"])))
    size = artifact_bytes(path)
    record.update(
        artifact_bytes=size,
        artifact_mb=round(size / 1e6, 3),
        keras_bytes=model_path.stat().st_size,
        input_shape=[None, *input_shape],
        outputs=sorted(keras_out) if isinstance(keras_out, dict) else ["probabilities"],
        parity_images=int(len(images)),
        parity_source=source,
        max_abs_diff=float(np.max(np.abs(p_keras - p_artifact))),
        argmax_agreement=float(np.mean(p_keras.argmax(1) == p_artifact.argmax(1))),
        **extra,
    )
    if latency_runs:
        one = images[:1]
        record["latency_ms"] = {
            "keras": round(median_latency_ms(keras_predict, one, latency_runs), 3),
            "artifact": round(median_latency_ms(artifact, one, latency_runs), 3),
            "runs": int(latency_runs),
        }
    import keras
    import tensorflow as tf

    record["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    record["export_json"] = str(_record(path, record))
    return record


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The human-readable lines the command prints for a record of :func:`export_run`."""
    lines = [
        f"{record['format']} artifact: {record['artifact']}",
        f"size: {record['artifact_bytes']} bytes ({record['artifact_mb']:.2f} MB; "
        f"Keras file {record['keras_bytes'] / 1e6:.2f} MB)",
        f"parity on {record['parity_source']}: max |p_artifact - p_keras| = "
        f"{record['max_abs_diff']:.3g}, same arg-max on {record['argmax_agreement']:.1%}",
    ]
    if "max_abs_diff_crop_logits" in record:
        lines.append(f"crop logits: max |difference| = {record['max_abs_diff_crop_logits']:.3g}")
    if "latency_ms" in record:
        lat = record["latency_ms"]
        lines.append(f"single-image latency (median of {lat['runs']}): Keras {lat['keras']:.2f} ms, "
                     f"{record['format']} {lat['artifact']:.2f} ms")
    lines.append(f"record: {record['export_json']}")
    return lines
