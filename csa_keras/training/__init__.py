"""The training engine every task shares.

- :mod:`~csa_keras.training.config`: :class:`RunConfig`, the settings of
  every run, which each task's config extends; ``config.json``;
- :mod:`~csa_keras.training.strategy`: the ``tf.distribute`` strategy,
  seeds and op determinism, the precision policy;
- :mod:`~csa_keras.training.pipeline`: ``tf.data`` pipelines with even
  per-replica batches, and the checks that refuse unusable arrays;
- :mod:`~csa_keras.training.loop` and :mod:`~csa_keras.training.callbacks`:
  one fit for every strategy and resumable training phases;
- :mod:`~csa_keras.training.rundir`: the run directory's lifecycle;
- :mod:`~csa_keras.training.experiment`: the lifecycle of every
  experiment, and the experiment around a task's training of one split;
- :mod:`~csa_keras.training.cli`: the training command of every task.

The names below are those modules', imported when first used: importing the
package loads no TensorFlow, so the training commands' modules import under
any Keras backend and say in one line what they need.
"""
import importlib

_HOMES = {
    "SelectionScore": "callbacks", "TrainingPhase": "callbacks",
    "PRECISIONS": "config", "STRATEGIES": "config", "RunConfig": "config", "config_json": "config",
    "Experiment": "experiment", "SplitOutcome": "experiment", "load_data": "experiment",
    "run_experiment": "experiment", "run_lifecycle": "experiment",
    "predict_dataset": "loop", "train_phase": "loop",
    "as_channels": "pipeline", "check_dataset": "pipeline", "check_images": "pipeline",
    "make_dataset": "pipeline", "replica_batching": "pipeline",
    "BACKUP": "rundir", "TENSORBOARD": "rundir", "write_history": "rundir",
    "get_strategy": "strategy", "resolve_precision": "strategy", "set_precision": "strategy",
}
"""Each public name and the module it lives in, imported on first use."""

_RENAMED = {"predict_dataset": "predict"}


def __getattr__(name: str):
    """The public names, loaded on use: importing the package (or its CLI) loads no TensorFlow."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_HOMES[name]}")
    value = getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "BACKUP",
    "PRECISIONS",
    "STRATEGIES",
    "TENSORBOARD",
    "Experiment",
    "RunConfig",
    "SelectionScore",
    "SplitOutcome",
    "TrainingPhase",
    "as_channels",
    "check_dataset",
    "check_images",
    "config_json",
    "get_strategy",
    "load_data",
    "make_dataset",
    "predict_dataset",
    "replica_batching",
    "resolve_precision",
    "run_experiment",
    "run_lifecycle",
    "set_precision",
    "train_phase",
    "write_history",
]
