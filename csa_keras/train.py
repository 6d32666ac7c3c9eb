"""Train and evaluate the CSA: ``python -m csa_keras.train``.

The training command of every task (:func:`csa_keras.training.cli.train_main`)
for the CSA: pretrain the sparse autoencoder, fine-tune its encoder as an
expression classifier, and write the run directory. Notebooks and tests call
:func:`csa_keras.csa.run_csa` directly. Without ``--data`` it trains on the
built-in synthetic faces; real results need a real dataset (docs/datasets.md).
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from csa_keras.utils.cli import entry_point
from csa_keras.utils.quiet import import_tensorflow


def command(task: str, prog: str) -> Callable[[list[str] | None], int]:
    """The ``main`` of a task's training command: ``python -m <package>.train``."""

    @entry_point(prog)
    def main(argv: list[str] | None = None) -> int:
        import_tensorflow()
        # After the quiet import: the training engine imports TensorFlow itself.
        from csa_keras.training.cli import train_main

        return train_main(task, argv, prog=prog)

    return main


def parser_of(task: str, prog: str) -> Callable[[], object]:
    """The ``build_parser`` of a task's training command: its ``argparse`` parser, built as
    ``main`` builds it (importing the engine loads TensorFlow)."""

    def build_parser():
        from csa_keras.tasks import get_task
        from csa_keras.training.cli import build_parser as training_parser

        return training_parser(get_task(task), prog)

    return build_parser


main = command("csa", "python -m csa_keras.train")
build_parser = parser_of("csa", "python -m csa_keras.train")

if __name__ == "__main__":
    sys.exit(main())
