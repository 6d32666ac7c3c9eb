"""Quantised TFLite exports: the faces int8 is calibrated on, and how a quantised artifact is judged.

Calibration. Full-integer (int8) quantisation maps every activation's float
range onto 256 levels, and the converter learns those ranges by running the
model on representative images. They should be the faces the model was
trained on: :func:`calibration_faces` re-creates the run's training faces
(the first split's ``train`` indices from ``splits.json``, else its protocol
re-applied, on the dataset its ``config.json`` names, checked against the
dataset summary the run recorded) and takes a sample of at most
:data:`CALIBRATION_IMAGES`, drawn with the run's seed. Where the data
cannot be re-created (a dataset moved away, a model trained on data passed
from Python, the packaged pretrained CSA whose FER2013 path is only a
placeholder), it calibrates on built-in synthetic faces of another seed than
the parity check's fallback faces, and the record says so.

Judging. A float32 artifact must reproduce the Keras model's probabilities
within float rounding; a quantised one cannot, by design, and what its user
needs to know is what it costs in accuracy. :func:`accuracy_record` puts the
accuracies of the Keras model, the float32 TFLite model and the quantised
artifact side by side on the run's labelled test images, against the goal
of :data:`ACCURACY_GOAL_POINTS`. A quantised artifact is refused
(:func:`check_quantized`) only when it is absurd: non-finite probabilities,
or, on more than :data:`MAX_CLEAR_CHANGES` of the check images, a class the
Keras model ranks clearly below its own choice (by more than
:data:`TIE_MARGIN` of probability). That needs no labels and means the same
on a handful of images, where a one-point accuracy goal cannot be measured
(one image in 17 is six points); near-ties are left out because int8's
steps may break them either way without the model being any different (an
untrained model, nearly uniform, changes class on one face in eight).

The module imports no TensorFlow itself (the data modules are imported when
calibration images are made), so the export's settings are checked first.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.inference.probabilities import as_probabilities
from csa_keras.utils.files import read_json

QUANTIZE = ("none", "float16", "int8")
"""The TFLite quantisations: none (float32), float16 weights, int8 weights and activations."""
CALIBRATION_IMAGES = 256
"""Training faces int8 is calibrated on, at most, by default."""
MAX_CALIBRATION_IMAGES = 10_000
"""The most faces ``calibration_images`` may ask for: int8 ranges settle on a few hundred, and the
synthetic fallback makes every face asked for (10,000 grey 48x48 faces: 92 MB as float32)."""
CALIBRATION_SEED = 1
"""Seed of the synthetic calibration faces: not the parity check's fallback faces (seed 0)."""
ACCURACY_GOAL_POINTS = 1.0
"""How far below the Keras model's accuracy a quantised artifact's may fall: the goal, reported, not enforced."""
TIE_MARGIN = 0.1
"""Keras probabilities closer than this to the top one count as a tie a quantised artifact may break."""
MAX_CLEAR_CHANGES = 0.1
"""The share of check images on which a quantised artifact may pick a class the Keras model ranks clearly lower.

Beyond it more than one face in ten gets another answer than the model
would clearly give, and the artifact no longer stands for the model.
"""


def run_training_images(run_dir: str | os.PathLike, input_shape: tuple[int, int, int],
                        n: int) -> tuple[np.ndarray, str]:
    """At most ``n`` of the first split's training faces of a run, as [0, 1] float32, and where they came from.

    The dataset is re-created as the run loaded it
    (:func:`csa_keras.inference.run_images.run_test_set` with
    ``part="train"``) and the sample is drawn with the run's seed, so an
    export calibrates on the same faces every time. Raises ``ValueError``
    when the data cannot be re-created.
    """
    from csa_keras.inference.run_images import run_test_set

    train = run_test_set(run_dir, input_shape, part="train")
    seed = read_json(Path(run_dir) / "config.json").get("config", {}).get("seed", 0)
    picked = np.sort(np.random.default_rng(seed).choice(len(train.images), size=min(n, len(train.images)),
                                                        replace=False))
    return train.images[picked], train.source.replace(
        f"{len(train.images)} train images", f"{len(picked)} training images", 1)


def synthetic_calibration_images(input_shape: tuple[int, int, int], n: int) -> np.ndarray:
    """``n`` built-in synthetic faces of the model's input shape, [0, 1] float32, of :data:`CALIBRATION_SEED`.

    ``n`` above :data:`MAX_CALIBRATION_IMAGES` is a one-line ``ValueError``.
    """
    from csa_keras.data.synthetic import make_synthetic_dataset

    if n > MAX_CALIBRATION_IMAGES:
        raise ValueError(f"calibration_images must be at most {MAX_CALIBRATION_IMAGES}. "
                         f"Received: calibration_images={n!r}")

    faces = make_synthetic_dataset(seed=CALIBRATION_SEED, n_subjects=max(1, math.ceil(n / 7)),
                                   images_per_class=1, size=int(input_shape[0]),
                                   colour=int(input_shape[-1]) == 3)
    return faces.scaled()[:n]


def calibration_faces(run_dir: str | os.PathLike, input_shape: tuple[int, int, int], n: int,
                       log: Callable[[str], None]) -> tuple[np.ndarray, dict[str, Any]]:
    """The faces int8 is calibrated on, and their record (``images``, ``source``, ``fallback``).

    The run's training faces (:func:`run_training_images`), else ``n``
    built-in synthetic faces, said in ``log`` and marked ``fallback``.
    """
    try:
        images, source = run_training_images(run_dir, input_shape, n)
        fallback = False
    except (ValueError, OSError, KeyError, IndexError, TypeError, AttributeError, StopIteration) as error:
        log(f"cannot re-create the run's training images ({error}); calibrating int8 on {n} "
            f"built-in synthetic faces of shape {input_shape} instead")
        images = synthetic_calibration_images(input_shape, n)
        source, fallback = f"{len(images)} built-in synthetic faces (fallback)", True
    return images, {"images": len(images), "source": source, "fallback": fallback}


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == labels))


def accuracy_record(labels: np.ndarray | None, p_keras: np.ndarray, p_artifact: np.ndarray,
                    p_float32: np.ndarray | None = None) -> dict[str, Any] | None:
    """Accuracies on the labelled check images: Keras model, artifact and, for a quantised one, float32 TFLite.

    ``None`` without labels (the synthetic fallback faces have no true
    expression). For a quantised artifact (``p_float32`` given) also
    ``drop_points``, how many points below the Keras model it falls, and
    whether that is within the goal of :data:`ACCURACY_GOAL_POINTS`.
    """
    if labels is None:
        return None
    labels = np.asarray(labels)
    record: dict[str, Any] = {"images": len(labels), "keras": _accuracy(p_keras, labels),
                              "artifact": _accuracy(p_artifact, labels)}
    if p_float32 is not None:
        drop = 100.0 * (record["keras"] - record["artifact"])
        record.update({"float32": _accuracy(p_float32, labels), "drop_points": round(drop, 3),
                       "goal_points": ACCURACY_GOAL_POINTS, "within_goal": drop <= ACCURACY_GOAL_POINTS})
    return record


def artifact_probabilities(task, outputs: Any) -> np.ndarray:
    """Class probabilities of a quantised artifact's outputs, rows renormalised (a softmax kept a softmax).

    An int8 softmax gives probabilities in steps of 1/256, so a row sums to
    1 only within a step per class (measured: 0.996 to 1.008 over seven
    classes), where the general rule
    (:func:`~csa_keras.inference.probabilities.as_probabilities`) would take
    it for logits and put it through a softmax again. Non-negative rows that
    sum to 1 within ``K / 256`` are divided by their sums; anything else goes
    through the general rule.
    """
    scores = np.asarray(task.probabilities(outputs), dtype=np.float64)
    if (scores.ndim == 2 and scores.size and np.all(np.isfinite(scores)) and scores.min() >= 0
            and np.abs(scores.sum(axis=1) - 1).max() <= scores.shape[1] / 256):
        return scores / scores.sum(axis=1, keepdims=True)
    return as_probabilities(scores)


def clear_changes(p_keras: np.ndarray, p_artifact: np.ndarray) -> float:
    """The share of images whose artifact class has a Keras probability more than :data:`TIE_MARGIN` below the top."""
    p_keras = np.asarray(p_keras)
    chosen = p_keras[np.arange(len(p_keras)), np.asarray(p_artifact).argmax(axis=1)]
    return float(np.mean(p_keras.max(axis=1) - chosen > TIE_MARGIN))


def check_quantized(quantize: str, p_keras: np.ndarray, p_artifact: np.ndarray, source: str) -> float:
    """The :func:`clear_changes` of a quantised artifact; a ``ValueError`` when the artifact is absurd.

    Absurd: a class probability that is not finite, or clear changes on
    more than :data:`MAX_CLEAR_CHANGES` of the images. The largest
    probability difference is reported by the caller and refuses nothing:
    int8 moves probabilities by a tenth on a face near a decision boundary.
    """
    if not np.all(np.isfinite(p_artifact)):
        raise ValueError(f"the {quantize} artifact gives non-finite class probabilities on {source}")
    changed = clear_changes(p_keras, p_artifact)
    if changed > MAX_CLEAR_CHANGES:
        raise ValueError(f"the {quantize} artifact picks a class the Keras model ranks more than {TIE_MARGIN:g} "
                         f"below its own on {changed:.1%} of {source}, more than {MAX_CLEAR_CHANGES:.0%}: "
                         f"the quantisation does not keep the model")
    return changed
