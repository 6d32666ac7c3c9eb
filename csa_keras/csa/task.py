"""The CSA as a registered task: what the shared commands need to drive it.

Registered through the ``csa_keras.tasks`` entry point (``setup.cfg``), so
``python -m csa_keras.train`` and the predict, export and evaluate commands
find it by name, by a run's ``metrics.json`` or by a loaded model.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from csa_keras.csa import training
from csa_keras.csa.config import PRESETS
from csa_keras.csa.model import CLOSURES
from csa_keras.csa.report import write_csa_report
from csa_keras.csa.training import MODEL_FILES, prepare_dataset
from csa_keras.tasks import Task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CSA")
    group.add_argument("--pretrain-epochs", type=int,
                       help="epochs of the autoencoder's unsupervised pretraining (default: the "
                            "recipe's)")
    group.add_argument("--finetune-epochs", type=int,
                       help="epochs of fine-tuning the encoder as a classifier (default: the "
                            "recipe's)")
    group.add_argument("--closure", choices=CLOSURES,
                       help="how the encoder and decoder shapes close (see docs/open-points.md)")


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    return dict(pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs,
                closure=args.closure)


def summary(metrics: dict) -> str:
    return (f"accuracy {metrics['accuracy']:.4f}  f1_macro {metrics['f1_macro']:.4f}  "
            f"psnr {metrics['psnr_db']:.2f} dB")


def owns(model) -> bool:
    """A classifier with one output: the CSA's softmax (and any plain Keras classifier)."""
    return len(model.outputs) == 1


def probabilities(outputs, **options: Any) -> np.ndarray:
    """The softmax output itself: one row of class probabilities per face."""
    return np.asarray(outputs, dtype=np.float32)


def _fit_split(config, dataset, split, folder, strategy, *, verbose, log, chief, state, resume):
    return training.train_split(config, dataset, split, folder, strategy, verbose=verbose, state=state,
                       resume=resume, log=log, chief=chief)


TASK = Task(
    name="csa",
    title="CSA",
    description="Convolutional sparse autoencoder: unsupervised pretraining, then its encoder "
                "fine-tuned as an expression classifier (Mohana & Subashini)",
    model_file="classifier.keras",
    run_files=MODEL_FILES,
    packages=("csa_keras",),
    presets=PRESETS,
    add_arguments=add_arguments,
    config_changes=config_changes,
    fit_split=_fit_split,
    prepare_dataset=prepare_dataset,
    write_report=write_csa_report,
    summary=summary,
    owns=owns,
    probabilities=probabilities,
    extra_metrics=lambda config: {"closure": config.closure},
)
