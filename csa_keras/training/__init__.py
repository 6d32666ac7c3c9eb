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
- :mod:`~csa_keras.training.experiment`: the experiment around a task's
  training of one split;
- :mod:`~csa_keras.training.cli`: the training command of every task.
"""
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
