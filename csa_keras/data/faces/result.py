"""What preprocessing a list of samples gives: the faces kept and the account of the rest.

:class:`PreprocessResult` is what :func:`~csa_keras.data.faces.batch.preprocess_samples`
returns and what the on-disk cache stores, so a cached run hands back
exactly what a fresh one would.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from csa_keras.data.dataset import SkipLog


@dataclasses.dataclass
class PreprocessResult:
    """Faces of the samples that survived preprocessing, and the account of the rest.

    ``images[i]`` is the face of ``samples[kept[i]]``. ``statuses`` has one
    entry per input sample: a word of :data:`~csa_keras.data.faces.locate.OUTCOMES`,
    or the decode reason of a skipped file. ``boxes`` holds the crop
    box of each sample in its original pixel coordinates (``-1`` where
    none). ``from_cache`` says the result was read from the on-disk cache
    (no decoding, no detection).
    """

    images: np.ndarray
    kept: np.ndarray
    skipped: SkipLog
    statuses: np.ndarray
    boxes: np.ndarray
    n_detected: int
    n_no_face: int
    from_cache: bool = False
    seconds: float = 0.0
    cache_path: str | None = None

    @property
    def status_counts(self) -> dict[str, int]:
        """How many samples ended with each status or skip reason."""
        values, counts = np.unique(self.statuses.astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts)}
