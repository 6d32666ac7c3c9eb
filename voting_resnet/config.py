"""Training settings of the Voting ResNet as a frozen dataclass with presets.

``paper`` is the paper's RAF-DB schedule (§3.3): Adam 2e-4, the learning rate
multiplied by 0.95 after every epoch, batch 135, 40 epochs, online
augmentation. The paper trains on AffectNet from scratch for 20 epochs
(here ``--epochs 20 --lr-decay 0.65 --balance``) and on RAF-DB for 40
epochs starting from those AffectNet weights (here ``--init-from``);
without ``--init-from`` the ``paper`` preset trains from scratch. The paper
says the rate is reduced "after each iteration"; read per batch, 0.95 to
the power of RAF-DB's ~90 batches an epoch would leave 1% of the rate after
one epoch, so "iteration" is read as epoch, and the decay is applied once
per epoch. ``quick`` (280 synthetic faces, split after module 3, 5 epochs:
minutes on a CPU) and ``smoke`` shorten it; ``smoke`` (for tests: 42
synthetic faces, one epoch) crops after module 3, the cheapest split point
that still cuts and votes over 10 views (3.05 GMACs per image against 6.66
after module 1).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from csa_keras.training.config import RunConfig, pick_preset
from csa_keras.utils.messages import must, one_of
from voting_resnet.layers.voting import VOTING_MODES
from voting_resnet.models.resnet18 import SPLIT_POINTS

RETRAIN_MODES = ("never", "several", "always")
SCHEDULES = ("exponential", "cosine")
"""How the learning rate moves: ``exponential``, ``lr * lr_decay ** epoch`` set once per epoch
(the paper's); ``cosine``, a linear warm-up from ``lr / 25`` to ``lr`` over ``warmup_epochs``,
then a cosine to zero at the last step (this project's one-cycle recipe), set every step."""
"""When the chosen split point is trained again on train + validation: never; only when it
was chosen among several (the default); always (the ``paper`` preset, the paper's §3.3)."""


@dataclasses.dataclass(frozen=True)
class VRNConfig(RunConfig):
    """Everything that decides a Voting ResNet run, written to ``config.json``.

    ``protocol`` defaults to ``predefined`` (the datasets' own train/test
    split, as the paper uses); data without splits falls back to ``holdout``.

    ``split_after`` is the split points a run compares, a tuple (one point:
    no comparison); each model is built with one of them, an int
    (:func:`~voting_resnet.models.resnet18.build_voting_resnet`'s
    ``split_after``), and ``metrics.json``'s ``split_after`` is the one chosen.
    The field keeps its name because the ``config.json`` of every run on disk
    carries it.
    """

    protocol: str = "predefined"
    val_per_class: int | None = None
    channels: int = 3
    # model (paper §3.1-3.2)
    split_after: tuple[int, ...] = (1,)
    voting: str = "soft"
    # optimisation (paper §3.3)
    epochs: int = 40
    batch_size: int = 135
    lr: float = 2e-4
    lr_decay: float = 0.95
    balance: bool = False
    augment: bool = True
    # the project's recipe (the ``converge`` recipe of voting_resnet.comparison); the
    # defaults are the paper's: no flip, no smoothing, no weight decay, exponential decay
    flip: bool = False
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "exponential"
    warmup_epochs: float = 0.0
    init_from: str | None = None
    retrain: str = "several"

    def replace(self, **changes: Any) -> VRNConfig:
        """A copy with the given settings; ``split_after`` may be one value, and a value
        given twice is trained once (``1 1 3`` is ``1 3``)."""
        split_after = changes.get("split_after")
        if isinstance(split_after, int):
            changes["split_after"] = (split_after,)
        elif split_after is not None:
            changes["split_after"] = tuple(dict.fromkeys(split_after))
        return super().replace(**changes)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            *super().checks(),
            (self.epochs >= 1, must("epochs", "be at least 1", self.epochs)),
            (self.lr > 0, must("lr", "be positive", self.lr)),
            (0 < self.lr_decay <= 1, must("lr_decay", "lie in (0, 1]", self.lr_decay)),
            (0 <= self.label_smoothing < 1,
             must("label_smoothing", "lie in [0, 1)", self.label_smoothing)),
            (self.weight_decay >= 0, must("weight_decay", "be at least 0", self.weight_decay)),
            (self.schedule in SCHEDULES, one_of("schedule", SCHEDULES, self.schedule)),
            (0 <= self.warmup_epochs < self.epochs,
             must("warmup_epochs", f"lie in [0, epochs={self.epochs})", self.warmup_epochs)),
            (self.voting in VOTING_MODES, one_of("voting", VOTING_MODES, self.voting)),
            (self.retrain in RETRAIN_MODES, one_of("retrain", RETRAIN_MODES, self.retrain)),
            (self.channels in (1, 3), one_of("channels", (1, 3), self.channels)),
            (len(self.split_after) >= 1 and all(s in SPLIT_POINTS for s in self.split_after),
             must("split_after", "take values in " + " ".join(map(str, SPLIT_POINTS)),
                  list(self.split_after))),
        ]


PRESETS: dict[str, VRNConfig] = {
    "paper": VRNConfig(preset="paper", retrain="always"),
    "quick": VRNConfig(preset="quick", epochs=5, batch_size=64, split_after=(3,),
                       synthetic_subjects=20, synthetic_images_per_class=2),
    "smoke": VRNConfig(
        preset="smoke", epochs=1, batch_size=16, split_after=(3,), synthetic_subjects=6,
        synthetic_images_per_class=1, folds=2,
    ),
}


def preset(name: str) -> VRNConfig:
    """The Voting ResNet preset called ``name`` (``paper``, ``quick`` or ``smoke``)."""
    return pick_preset(PRESETS, name)
