"""The CSA as a registered task: what the shared commands need to drive it.

Registered through the ``csa_keras.tasks`` entry point (``pyproject.toml``), so
``python -m csa_keras.train`` and the predict, export and evaluate commands
find it by name, by a run's ``metrics.json`` or by a loaded model.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from csa_keras.csa import training
from csa_keras.csa.config import PRESETS
from csa_keras.csa.model import CLASSIFIER_LAYERS, CLASSIFIER_OUTPUT, CLOSURES
from csa_keras.csa.report import write_csa_report
from csa_keras.csa.training import MODEL_FILES
from csa_keras.tasks import Task


class CSATask(Task):
    """The convolutional sparse autoencoder and its classifier."""

    name = "csa"
    title = "CSA"
    description = ("Convolutional sparse autoencoder: unsupervised pretraining, then its encoder "
                   "fine-tuned as an expression classifier (Mohana & Subashini)")
    model_file = "classifier.keras"
    run_files = MODEL_FILES
    packages = ("csa_keras",)
    presets = PRESETS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("CSA")
        group.add_argument("--pretrain-epochs", type=int,
                           help="epochs of the autoencoder's unsupervised pretraining (default: the "
                                "recipe's)")
        group.add_argument("--finetune-epochs", type=int,
                           help="epochs of fine-tuning the encoder as a classifier (default: the "
                                "recipe's)")
        group.add_argument("--closure", choices=CLOSURES,
                           help="how the encoder and decoder shapes close (see docs/open-points.md)")

    def config_changes(self, args: argparse.Namespace) -> dict[str, Any]:
        return dict(pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs,
                    closure=args.closure)

    def prepare_dataset(self, config, dataset, log):
        return training.prepare_dataset(config, dataset, log)

    def fit_split(self, config, dataset, split, folder, strategy, *, verbose, log, chief, state, resume):
        return training.fit_split(config, dataset, split, folder, strategy, verbose=verbose, state=state,
                                  resume=resume, log=log, chief=chief)

    def extra_metrics(self, config) -> dict[str, Any]:
        return {"closure": config.closure}

    def write_report(self, out, config, dataset, outcomes, metrics):
        return write_csa_report(out, config, dataset, outcomes, metrics)

    def summary(self, metrics: dict) -> str:
        return (f"accuracy {metrics['accuracy']:.4f}  f1_macro {metrics['f1_macro']:.4f}  "
                f"psnr {metrics['psnr_db']:.2f} dB")

    def owns(self, model) -> bool:
        """The classifier :func:`~csa_keras.csa.model.build_classifier` writes: its one output
        is the ``predictions`` layer and it holds the encoder's convolutions by their names."""
        if list(getattr(model, "output_names", None) or []) != [CLASSIFIER_OUTPUT]:
            return False
        names = {layer.name for layer in model.layers}
        return all(name in names for name in CLASSIFIER_LAYERS)

    def probabilities(self, outputs, **options: Any) -> np.ndarray:
        """The softmax output itself: one row of class probabilities per face."""
        return np.asarray(outputs, dtype=np.float32)


TASK = CSATask()
