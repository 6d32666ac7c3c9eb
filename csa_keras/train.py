"""Train and evaluate the CSA: ``python -m csa_keras.train``.

The training command of every task (:func:`csa_keras.training.cli.command`)
for the CSA: pretrain the sparse autoencoder, fine-tune its encoder as an
expression classifier, and write the run directory. Notebooks and tests call
:func:`csa_keras.csa.run_csa` directly. Without ``--data`` it trains on the
built-in synthetic faces; real results need a real dataset (docs/datasets.md).
"""
from __future__ import annotations

import sys

from csa_keras.training.cli import command, parser_of

main = command("csa", "python -m csa_keras.train")
build_parser = parser_of("csa", "python -m csa_keras.train")

if __name__ == "__main__":
    sys.exit(main())
