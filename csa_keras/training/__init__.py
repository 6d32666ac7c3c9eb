"""The training engine every task shares; ``docs/layout.md`` lists its modules."""
from csa_keras.training.callbacks import SelectionScore, TrainingPhase
from csa_keras.training.config import PRECISIONS, STRATEGIES, RunConfig, config_json
from csa_keras.training.experiment import SplitOutcome, load_data, run_experiment
from csa_keras.training.loop import predict as predict_dataset
from csa_keras.training.loop import train_phase
from csa_keras.training.pipeline import (
    as_channels,
    check_dataset,
    check_images,
    make_dataset,
    replica_batching,
)
from csa_keras.training.rundir import BACKUP, TENSORBOARD, write_history
from csa_keras.training.strategy import get_strategy, resolve_precision, set_precision

__all__ = [
    "BACKUP",
    "PRECISIONS",
    "STRATEGIES",
    "TENSORBOARD",
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
    "set_precision",
    "train_phase",
    "write_history",
]
