"""Training settings of the CSA as a frozen dataclass with named presets.

``paper`` is the recipe of the CSA paper (§3.3, §4.3): pretraining 100
epochs, fine-tuning 70 epochs, batch 32, Adam 1e-3, sparsity 1e-5. The paper
says 100 fine-tuning epochs in §3.3 and 70 in §4.3; the preset follows §4.3
and ``finetune_epochs`` sets either. ``quick`` is the README demo (minutes on
two CPU cores on the built-in data), ``smoke`` runs in seconds for tests.
"""
from __future__ import annotations

import dataclasses

from csa_keras.csa.model import CLOSURES
from csa_keras.training.config import RunConfig, pick_preset
from csa_keras.utils.messages import must, one_of


@dataclasses.dataclass(frozen=True)
class CSAConfig(RunConfig):
    """Everything that decides a CSA run, so ``config.json`` can reproduce it."""

    # model (paper §3.2-3.3)
    filters: tuple[int, ...] = (32, 64, 128, 256)
    sparsity: float = 1e-5
    closure: str = "code6"
    dense_units: int = 128
    # optimisation (paper §4.3)
    pretrain_epochs: int = 100
    finetune_epochs: int = 70
    pretrain_lr: float = 1e-3
    finetune_lr: float = 1e-3

    def checks(self) -> list[tuple[bool, str]]:
        return [
            *super().checks(),
            (self.pretrain_epochs >= 0,
             must("pretrain_epochs", "be at least 0", self.pretrain_epochs)),
            (self.finetune_epochs >= 1,
             must("finetune_epochs", "be at least 1", self.finetune_epochs)),
            (self.pretrain_lr > 0, must("pretrain_lr", "be positive", self.pretrain_lr)),
            (self.finetune_lr > 0, must("finetune_lr", "be positive", self.finetune_lr)),
            (self.closure in CLOSURES, one_of("closure", CLOSURES, self.closure)),
            (len(self.filters) == 4,
             must("filters", "give 4 widths, one per encoder block", self.filters)),
        ]


PRESETS: dict[str, CSAConfig] = {
    "paper": CSAConfig(preset="paper"),
    "quick": CSAConfig(preset="quick", pretrain_epochs=8, finetune_epochs=15),
    "smoke": CSAConfig(
        preset="smoke",
        pretrain_epochs=1,
        finetune_epochs=1,
        synthetic_subjects=6,
        synthetic_images_per_class=2,
        folds=2,
        gradcam=True,
    ),
}


def preset(name: str) -> CSAConfig:
    """The CSA preset called ``name`` (``paper``, ``quick`` or ``smoke``)."""
    return pick_preset(PRESETS, name)
