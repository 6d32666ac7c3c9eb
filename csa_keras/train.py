"""Train and evaluate the CSA: ``python -m csa_keras.train`` (SPEC §5).

A thin ``argparse`` front end over :func:`csa_keras.training.csa.run_csa`,
which notebooks and tests call directly. Without ``--data`` it trains on the
built-in synthetic faces; real results need a real dataset (see README).
"""
from __future__ import annotations

import argparse
import sys

from csa_keras.training.cli import add_common_arguments, common_changes, run_command
from csa_keras.training.config import PRESETS, preset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m csa_keras.train",
        description="Pretrain the convolutional sparse autoencoder, fine-tune its encoder "
                    "as an expression classifier, and write the run directory.",
    )
    add_common_arguments(parser, PRESETS,
                         "paper (100 + 70 epochs), quick (the README demo), smoke (seconds)")
    csa = parser.add_argument_group("CSA")
    csa.add_argument("--pretrain-epochs", type=int)
    csa.add_argument("--finetune-epochs", type=int)
    csa.add_argument("--closure", choices=["code6", "pool4"],
                     help="how the encoder and decoder shapes close (see README)")
    return parser


def config_from_args(args: argparse.Namespace):
    return preset(args.preset).replace(
        **common_changes(args), pretrain_epochs=args.pretrain_epochs,
        finetune_epochs=args.finetune_epochs, closure=args.closure)


def _summary(metrics: dict) -> str:
    return (f"accuracy {metrics['accuracy']:.4f}  f1_macro {metrics['f1_macro']:.4f}  "
            f"psnr {metrics['psnr_db']:.2f} dB")


def _run(config, **kwargs):
    from csa_keras.training.csa import run_csa

    return run_csa(config, **kwargs)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, "csa", config_from_args, _run, _summary)


if __name__ == "__main__":
    sys.exit(main())
