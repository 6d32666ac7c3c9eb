"""``voting-resnet COMMAND`` (or ``python -m voting_resnet COMMAND``): the Voting ResNet's commands.

Each is also its own module (``python -m voting_resnet.compare``); prediction,
evaluation and export of a Voting ResNet are the shared ``csa-keras``
commands (:mod:`csa_keras.__main__`).
"""
from __future__ import annotations

import sys

from csa_keras.utils.cli import dispatch

COMMANDS = {
    "train": ("voting_resnet.train", "train the Voting ResNet at one or several split points, vote, report"),
    "compare": ("voting_resnet.compare", "the paper's Table 3: baseline, test-time and fine-tuned voters"),
    "profile": ("voting_resnet.profile", "FLOPs and memory per split point (the paper's Table 2)"),
    "pack": ("voting_resnet.pretrained", "pack a comparison's chosen model as a pretrained model"),
}
"""Command name: (module whose ``main(argv)`` runs it, one-line summary)."""


def main(argv: list[str] | None = None) -> int:
    return dispatch("voting-resnet", COMMANDS, argv,
                    footer="Predict, evaluate and export a Voting ResNet: csa-keras --help")


if __name__ == "__main__":
    sys.exit(main())
