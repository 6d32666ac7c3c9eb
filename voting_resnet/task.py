"""The Voting ResNet as a registered task: what the shared commands need to drive it.

Registered through the ``csa_keras.tasks`` entry point (``pyproject.toml``), so
``python -m voting_resnet.train`` and the predict, export and evaluate
commands of :mod:`csa_keras` find it by name, by a run's ``metrics.json`` or
by a loaded model, without importing this package by name.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from csa_keras.data.faces import CHANNELS
from csa_keras.tasks import Task
from voting_resnet import training
from voting_resnet.config import PRESETS, RETRAIN_MODES, VRNConfig
from voting_resnet.layers.voting import VOTING_MODES, Voting, vote
from voting_resnet.models.resnet18 import SPLIT_POINTS, VOTER_SPLIT_POINTS
from voting_resnet.report import write_vrn_report
from voting_resnet.training import MODEL_FILE, aggregate, check_splits, prepare_dataset


def add_split_points(group, help: str, flag: str = "--split-after", voters: bool = False) -> None:
    """A split-point option of either command: its choices are the model's split points
    (:data:`~voting_resnet.models.resnet18.SPLIT_POINTS`), or only the voters' where the plain
    ResNet-18 is always there (the comparison's baseline)."""
    group.add_argument(flag, type=int, nargs="+", help=help,
                       choices=VOTER_SPLIT_POINTS if voters else SPLIT_POINTS)


def add_schedule_options(group, what: str) -> None:
    """``--epochs``, ``--lr`` and ``--lr-decay``: the schedule of ``what`` (the training, or the
    comparison's baseline), worded once for both commands."""
    group.add_argument("--epochs", type=int, help=f"epochs of {what} (default: the recipe's)")
    group.add_argument("--lr", type=float, help=f"initial learning rate of {what} (paper: 2e-4)")
    group.add_argument("--lr-decay", type=float,
                       help="factor applied to the learning rate after every epoch (RAF-DB 0.95, "
                            "AffectNet 0.65)")


def add_input_options(group) -> None:
    """The training-input options of both Voting ResNet commands (train and compare), worded once."""
    group.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                       help="train without the online augmentation (crops, colour jitter, "
                            "shifts, rotations, erasing)")
    group.add_argument("--channels", type=int, choices=CHANNELS,
                       help="input channels (default 3; grey data repeats its channel)")
    group.add_argument("--val-per-class", type=int,
                       help="validation images per class carved from train (AffectNet: 500)")


def shared_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the options both commands declare here (schedule and input)."""
    return dict(epochs=args.epochs, lr=args.lr, lr_decay=args.lr_decay, augment=args.augment,
                channels=args.channels, val_per_class=args.val_per_class)


class VotingResNetTask(Task):
    """The ResNet-18 whose feature maps are cropped, mirrored and voted on."""

    name = "voting_resnet"
    title = "Voting ResNet"
    description = ("ResNet-18 for 48x48 faces whose feature maps are cut into 5 crops and their "
                   "mirrors, which vote (Gómez-Sirvent et al., 2023)")
    model_file = MODEL_FILE
    run_files = (MODEL_FILE,)
    packages = ("voting_resnet",)
    presets = PRESETS

    def describe(self, metrics: dict[str, Any]) -> str:
        """The split point and vote of the model scored (the plain ResNet-18 at split 0)."""
        split_after = metrics.get("split_after")
        if split_after == 0:
            return ("ResNet-18 for 48x48 faces, the Voting ResNet's plain baseline: no crops, no "
                    "vote (Gómez-Sirvent et al., 2023)")
        if isinstance(split_after, int) and metrics.get("voting") in VOTING_MODES:
            return (f"{self.description}; cut after module {split_after}, "
                    f"{metrics['voting']} voting")
        return self.description

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Voting ResNet")
        add_split_points(group, "module(s) after which to crop: 0 baseline, 1, 2, 3 (default 1); "
                                "several are compared on validation and the best is tested")
        group.add_argument("--voting", choices=VOTING_MODES,
                           help="how the ten views vote: soft (mean of their probabilities) or hard "
                                "(majority of their labels) (default: the recipe's, soft)")
        add_schedule_options(group, "the training")
        group.add_argument("--balance", action="store_true", default=None,
                           help="class-balanced batches (down- and over-sampling)")
        group.add_argument("--init-from", metavar="MODEL",
                           help="the weights to start from: a .keras file, a run directory of "
                                "voting_resnet.train, or the name of a model in the box (vrn_fer2013)")
        add_input_options(group)
        group.add_argument("--retrain", choices=RETRAIN_MODES,
                           help="train the chosen split point again on train + validation for the "
                                "selected number of epochs: never, several (only when chosen among "
                                "several split points; default), always (the paper recipe)")

    def config_changes(self, args: argparse.Namespace) -> dict[str, Any]:
        return dict(
            split_after=tuple(args.split_after) if args.split_after else None,
            voting=args.voting, balance=args.balance, init_from=args.init_from, retrain=args.retrain,
            **shared_changes(args))

    def colour(self, config) -> bool:
        return isinstance(config, VRNConfig) and config.channels == 3

    def prepare_dataset(self, config, dataset, log):
        return prepare_dataset(config, dataset, log)

    def check_splits(self, config, splits) -> None:
        check_splits(config, splits)

    def fit_split(self, config, dataset, split, folder, strategy, *, verbose, log, chief, state, resume):
        return training.fit_split(config, dataset, split, folder, strategy, verbose=verbose, log=log,
                                  chief=chief, state=state, resume=resume)

    def aggregate(self, config, outcomes, names, metrics: dict[str, Any]) -> dict[str, Any]:
        return aggregate(config, outcomes, names, metrics)

    def write_report(self, out, config, dataset, outcomes, metrics):
        return write_vrn_report(out, config, dataset, outcomes, metrics)

    def summary(self, metrics: dict) -> str:
        return (f"split_after {metrics['split_after']}  accuracy soft {metrics['accuracy_soft']:.4f}"
                f"  hard {metrics['accuracy_hard']:.4f}")

    def owns(self, model) -> bool:
        """The model :func:`~voting_resnet.models.build_voting_resnet` writes: its outputs are
        ``crop_logits`` and ``vote``, the latter a :class:`~voting_resnet.layers.Voting` layer."""
        if sorted(getattr(model, "output_names", None) or []) != ["crop_logits", "vote"]:
            return False
        return any(layer.name == "vote" and isinstance(layer, Voting) for layer in model.layers)

    def probabilities(self, outputs, voting: str | None = None, **options: Any) -> np.ndarray:
        """The vote over the ten views, as the saved model casts it or re-voted with ``voting``.

        ``outputs`` is the model's dict of ``crop_logits`` ``(N, 10, K)`` and
        ``vote`` ``(N, K)``; ``voting="soft"`` or ``"hard"`` votes the crop
        logits again instead of the mode the model was built with.
        """
        if voting is None:
            return np.asarray(outputs["vote"], dtype=np.float32)
        return vote(np.asarray(outputs["crop_logits"]), voting)


TASK = VotingResNetTask()
