"""Choosing the ``tf.distribute`` strategy every training run is built under.

Models are built and compiled inside ``strategy.scope()`` and datasets are
batched at the global batch size (per-replica batch x replicas), so the same
code trains on a CPU, one GPU, several GPUs of one machine
(``MirroredStrategy``) or several machines (``MultiWorkerMirroredStrategy``,
configured through ``TF_CONFIG``).
"""
from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from csa_keras.training.config import PRECISIONS, STRATEGIES
from csa_keras.utils.cpu import cpu_flags, has_bfloat16
from csa_keras.utils.messages import one_of


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy for ``--strategy NAME``.

    - ``auto``: ``MirroredStrategy`` over every visible GPU when there are
      several, ``OneDeviceStrategy`` on the single GPU or else the CPU.
    - ``one-device``: the first GPU, or the CPU.
    - ``mirrored``: every visible GPU; with none, every logical CPU device
      (so a machine configured with several logical CPUs, as the tests do,
      exercises the real all-reduce path).
    - ``multi-worker``: ``MultiWorkerMirroredStrategy``, which reads the
      cluster from ``TF_CONFIG``. It must be created before anything starts
      the TensorFlow runtime (listing devices does), so a run creates its
      strategy first.
    """
    if name not in STRATEGIES:
        raise ValueError(one_of("strategy", STRATEGIES, name))
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("strategy='multi-worker' needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def describe(strategy: tf.distribute.Strategy) -> dict:
    """What the run report and ``config.json`` record of the strategy."""
    info = {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
    }
    extended = getattr(strategy, "extended", None)
    devices = getattr(extended, "worker_devices", None)
    if devices:
        info["devices"] = list(devices)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
        info["task"] = cluster.get("task", {})
    return info


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy a ``precision`` setting stands for on this machine.

    ``auto`` is ``mixed_float16`` where a GPU is present, ``mixed_bfloat16``
    on a CPU with AMX or AVX-512 BF16 (:func:`~csa_keras.utils.cpu.has_bfloat16`), where it
    trained the Voting ResNet 1.7x and the CSA classifier 1.4-1.8x faster than
    float32, and ``float32`` elsewhere (bfloat16 emulated in software is
    slower than float32). An explicit policy is taken as it is.
    """
    if precision not in PRECISIONS:
        raise ValueError(one_of("precision", PRECISIONS, precision))
    if precision != "auto":
        return precision
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    if has_bfloat16(cpu_flags()):
        return "mixed_bfloat16"
    return "float32"


def set_precision(precision: str) -> str:
    """Set the global Keras dtype policy for ``precision``; returns the policy in force.

    Under a mixed policy the layers compute in 16 bits and keep float32
    weights; output layers are built with ``dtype="float32"`` so the softmax,
    the logits and the losses stay in float32.
    """
    policy = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy().name


def seed_everything(seed: int, deterministic: bool = False) -> bool:
    """Seed Python, NumPy and TensorFlow, and turn TensorFlow op determinism on where it is free.

    The same seed and data on a CPU give the same
    ``metrics.json``. ``keras.utils.set_random_seed`` fixes the initial
    weights, the shuffles and the augmentation draws;
    ``tf.config.experimental.enable_op_determinism`` makes the kernels and
    ``tf.data`` whose results could depend on thread timing deterministic.
    It is always on without a GPU, where it costs next to nothing; on a GPU
    some kernels become slower (or refuse to run), so it is on only when
    asked (``--deterministic``). Once on it stays on for the process, which
    TensorFlow offers no public way to undo. Returns whether it is on.
    """
    keras.utils.set_random_seed(seed)
    if deterministic or not tf.config.list_logical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()
        return True
    return False


def task_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in the cluster (0 outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", None) or 0)
