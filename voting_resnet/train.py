"""Train and evaluate the Voting ResNet: ``python -m voting_resnet.train`` (SPEC §5).

A thin ``argparse`` front end over :func:`voting_resnet.training.run_vrn`.
``--split-after`` takes one or several split points; with several, each is
scored on validation, the best is retrained on train + validation and tested
(the paper's protocol).
"""
from __future__ import annotations

import argparse
import sys

from csa_keras.training.cli import add_common_arguments, common_changes, run_command
from voting_resnet.config import PRESETS, preset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m voting_resnet.train",
        description="Train the Voting ResNet-18 for 48x48 faces and write the run directory.",
    )
    add_common_arguments(parser, PRESETS,
                         "paper (the RAF-DB recipe: 40 epochs, decay 0.95), quick, smoke")
    vrn = parser.add_argument_group("Voting ResNet")
    vrn.add_argument("--split-after", type=int, nargs="+", choices=[0, 1, 2, 3],
                     help="module(s) after which to crop: 0 baseline, 1, 2, 3 (default 1)")
    vrn.add_argument("--voting", choices=["soft", "hard"])
    vrn.add_argument("--epochs", type=int)
    vrn.add_argument("--lr", type=float, help="initial learning rate (paper: 2e-4)")
    vrn.add_argument("--lr-decay", type=float,
                     help="factor applied after every epoch (RAF-DB 0.95, AffectNet 0.65)")
    vrn.add_argument("--balance", action="store_true", default=None,
                     help="class-balanced batches (down- and over-sampling)")
    vrn.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    vrn.add_argument("--init-from", help="a model.keras or run directory to start from")
    vrn.add_argument("--channels", type=int, choices=[1, 3],
                     help="input channels (default 3; grey data repeats its channel)")
    vrn.add_argument("--val-per-class", type=int,
                     help="validation images per class carved from train (AffectNet: 500)")
    vrn.add_argument("--no-retrain", dest="retrain_on_train_val", action="store_false",
                     default=None, help="skip retraining the best split point on train + val")
    return parser


def config_from_args(args: argparse.Namespace):
    return preset(args.preset).replace(
        **common_changes(args),
        split_after=tuple(args.split_after) if args.split_after else None,
        voting=args.voting, epochs=args.epochs, lr=args.lr, lr_decay=args.lr_decay,
        balance=args.balance, augment=args.augment, init_from=args.init_from,
        channels=args.channels, val_per_class=args.val_per_class,
        retrain_on_train_val=args.retrain_on_train_val)


def _summary(metrics: dict) -> str:
    return (f"split_after {metrics['split_after']}  accuracy soft {metrics['accuracy_soft']:.4f}"
            f"  hard {metrics['accuracy_hard']:.4f}")


def _run(config, **kwargs):
    from voting_resnet.training import run_vrn

    return run_vrn(config, **kwargs)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, "voting_resnet", config_from_args, _run, _summary)


if __name__ == "__main__":
    sys.exit(main())
