"""Training settings of the CSA as a frozen dataclass with named presets.

``paper`` is the recipe of the CSA paper (§3.3, §4.3): pretraining 100
epochs, fine-tuning 70 epochs, batch 32, Adam 1e-3, sparsity 1e-5. The paper
says 100 fine-tuning epochs in §3.3 and 70 in §4.3; the preset follows §4.3
and ``--finetune-epochs`` sets either. ``quick`` is the README demo (minutes on
two CPU cores on the built-in data), ``smoke`` runs in seconds for tests.
Every setting is written to ``config.json`` beside the artifacts.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings every training command shares: the data, the protocol, the run."""

    preset: str = "paper"
    # data
    data: str | None = None
    format: str = "auto"
    detect: str = "auto"
    no_face: str = "skip"
    protocol: str = "holdout"
    folds: int = 10
    test_size: float = 0.2
    val_fraction: float = 0.1
    dedupe: bool = False
    reader_options: tuple[tuple[str, str], ...] = ()
    synthetic_subjects: int = 40
    synthetic_images_per_class: int = 3
    # run
    batch_size: int = 32
    seed: int = 0
    strategy: str = "auto"
    precision: str = "float32"
    deterministic: bool = False
    gradcam: bool = True

    def replace(self, **changes: Any):
        """A copy with the given settings; ``None`` means "keep the preset's"."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def reader_kwargs(self) -> dict[str, Any]:
        """``--reader-option KEY=VALUE`` pairs as keyword arguments, numbers and
        booleans parsed (``classes=8``, ``first_as_neutral=true``)."""
        parsed: dict[str, Any] = {}
        for key, value in self.reader_options:
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                parsed[key] = lowered == "true"
            elif lowered.lstrip("-").isdigit():
                parsed[key] = int(lowered)
            else:
                parsed[key] = value
        return parsed

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.folds >= 2, f"--folds must be at least 2 (got {self.folds})"),
            (0.0 < self.test_size < 1.0, "--test-size must be between 0 and 1"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (self.protocol in ("holdout", "subject-kfold", "predefined"),
             f"unknown protocol {self.protocol!r}"),
            (self.precision in ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
             f"unknown precision {self.precision!r}: auto, float32, mixed_bfloat16 or "
             "mixed_float16"),
        ]

    def validate(self):
        """Raise a one-line ``ValueError`` for a setting no run can use."""
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CSAConfig(RunConfig):
    """Everything that decides a CSA run, so ``config.json`` can reproduce it."""

    # model (paper §3.2-3.3, SPEC §3)
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
        return super().checks() + [
            (self.pretrain_epochs >= 0, "--pretrain-epochs must be >= 0"),
            (self.finetune_epochs >= 1, "--finetune-epochs must be >= 1"),
            (self.pretrain_lr > 0 and self.finetune_lr > 0, "learning rates must be positive"),
            (self.closure in ("code6", "pool4"), f"unknown closure {self.closure!r}: code6 or pool4"),
            (len(self.filters) == 4, "the CSA encoder has 4 blocks: give 4 filter widths"),
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
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def environment() -> dict[str, str]:
    """Library and platform versions recorded in ``config.json``."""
    import cv2
    import keras
    import numpy
    import sklearn
    import tensorflow

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "scikit-learn": sklearn.__version__,
    }


def config_json(config: Any, **extra: Any) -> str:
    """``config.json``: every setting of a frozen config, the seed, the versions."""
    body = {"config": dataclasses.asdict(config), "versions": environment(), **extra}
    return json.dumps(body, indent=2, default=str)
