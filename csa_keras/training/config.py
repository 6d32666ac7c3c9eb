"""The settings every task shares, as a frozen dataclass each task extends.

A task's config (the CSA's, the Voting ResNet's) subclasses :class:`RunConfig`
with its model and optimisation settings and names its presets; every
setting is written to ``config.json`` beside the artifacts
(:func:`config_json`), so a run can be reproduced from it.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from csa_keras.data.protocols import PROTOCOLS
from csa_keras.data.readers.options import reader_kwargs
from csa_keras.utils.cpu import onednn_state
from csa_keras.utils.messages import must, one_of

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
"""The values of ``strategy``: how :func:`~csa_keras.training.strategy.get_strategy` distributes."""

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
"""The values of ``precision``: a Keras dtype policy, or ``auto`` (see
:func:`~csa_keras.training.strategy.resolve_precision`)."""


def pick_preset(presets: Mapping[str, Any], name: str):
    """``presets[name]``, or a one-line error naming the choices."""
    if name not in presets:
        raise ValueError(one_of("preset", list(presets), name))
    return presets[name]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings every training command shares: the data, the protocol, the run.

    ``RESUME_ADDS`` names the settings that list pieces of work a resumed run
    may add to (a comparison's rows); every other setting must match the run's.
    """

    RESUME_ADDS: ClassVar[tuple[str, ...]] = ()

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
    data_licence: str | None = None
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
        """``reader_options`` as the readers' keyword arguments, numbers and booleans parsed
        (``classes=8``, ``first_as_neutral=true``: :func:`~csa_keras.data.readers.reader_kwargs`)."""
        return reader_kwargs(self.reader_options)

    def checks(self) -> list[tuple[bool, str]]:
        """``(condition, message)`` pairs; a task's config adds its own."""
        return [
            (self.batch_size >= 1, must("batch_size", "be at least 1", self.batch_size)),
            (self.folds >= 2, must("folds", "be at least 2", self.folds)),
            (0.0 < self.test_size < 1.0, must("test_size", "lie in (0, 1)", self.test_size)),
            (0.0 <= self.val_fraction < 1.0,
             must("val_fraction", "lie in [0, 1)", self.val_fraction)),
            (self.protocol in PROTOCOLS, one_of("protocol", PROTOCOLS, self.protocol)),
            (self.precision in PRECISIONS, one_of("precision", PRECISIONS, self.precision)),
            (self.strategy in STRATEGIES, one_of("strategy", STRATEGIES, self.strategy)),
            *self._synthetic_checks(),
        ]

    def _synthetic_checks(self) -> list[tuple[bool, str]]:
        """The built-in faces' counts: at least 1, and within :data:`~csa_keras.data.synthetic.MAX_SYNTHETIC_PIXELS`
        (8 classes of 48x48 colour faces counted, the most a task asks of them)."""
        from csa_keras.data.synthetic import MAX_SYNTHETIC_PIXELS

        subjects, repeats = self.synthetic_subjects, self.synthetic_images_per_class
        checks = [(isinstance(n, int) and n >= 1, must(name, "be >= 1", n))
                  for name, n in (("synthetic_subjects", subjects), ("synthetic_images_per_class", repeats))]
        if all(ok for ok, _ in checks):
            most = MAX_SYNTHETIC_PIXELS // (8 * 48 * 48 * 3)
            checks.append((subjects * repeats <= most,
                           must("synthetic_subjects x synthetic_images_per_class",
                                f"be at most {most} (the built-in faces are bounded)", subjects * repeats)))
        return checks

    def validate(self):
        """Raise a one-line ``ValueError`` for a setting no run can use."""
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    """``config.json``: every setting of a frozen config, the seed, the versions, and the kernels
    TensorFlow runs on this CPU (:func:`csa_keras.utils.cpu.onednn_state`)."""
    body = {"config": dataclasses.asdict(config), "versions": environment(),
            "cpu_kernels": onednn_state(), **extra}
    return json.dumps(body, indent=2, default=str)
