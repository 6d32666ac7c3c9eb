"""The training engine every task shares; ``docs/layout.md`` lists its modules.

Its public names are imported when first used: importing the package loads no
TensorFlow, so the training commands' modules import under any Keras backend and
say in one line what they need.
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
