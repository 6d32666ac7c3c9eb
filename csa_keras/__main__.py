"""``csa-keras COMMAND`` (or ``python -m csa_keras COMMAND``): the project's commands by name.

Each command is also its own module (``python -m csa_keras.predict``); this
front end lists them and runs one. The Voting ResNet's commands are under
``voting-resnet`` (:mod:`voting_resnet.__main__`).
"""
from __future__ import annotations

import sys

from csa_keras.utils.cli import dispatch

COMMANDS = {
    "predict": ("csa_keras.predict", "the expression of every face in photos, folders, videos or a camera"),
    "serve": ("csa_keras.serve", "answer POST /predict over HTTP, with a page to try it in a browser"),
    "evaluate": ("csa_keras.evaluate", "score a saved model on a labelled dataset (metrics, report, figures)"),
    "export": ("csa_keras.export", "export a model to TFLite or a SavedModel, its accuracy checked"),
    "train": ("csa_keras.train", "train and evaluate the CSA: pretrain, fine-tune, write a run directory"),
    "data": ("csa_keras.data.__main__", "what a dataset's reader and the face preprocessing find"),
    "pack": ("csa_keras.inference.pretrained", "pack a finished run as a pretrained model of the package"),
}
"""Command name: (module whose ``main(argv)`` runs it, one-line summary)."""


def main(argv: list[str] | None = None) -> int:
    return dispatch("csa-keras", COMMANDS, argv,
                    footer="The Voting ResNet's commands: voting-resnet --help")


if __name__ == "__main__":
    sys.exit(main())
