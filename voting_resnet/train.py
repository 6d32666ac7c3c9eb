"""Train and evaluate the Voting ResNet: ``python -m voting_resnet.train``.

The training command of every task (:func:`csa_keras.training.cli.command`)
for the Voting ResNet. ``--split-after`` takes one or several split points;
with several, each is scored on validation, the best is retrained on train +
validation and tested (the paper's protocol). Notebooks and tests call
:func:`voting_resnet.training.run_vrn` directly.
"""
from __future__ import annotations

import sys

from csa_keras.training.cli import command, parser_of

main = command("voting_resnet", "python -m voting_resnet.train")
build_parser = parser_of("voting_resnet", "python -m voting_resnet.train")

if __name__ == "__main__":
    sys.exit(main())
