"""How sure a test accuracy is, and whether two models on the same test images differ.

A test set of a few thousand faces measures an accuracy to about ±1.5
points, the size of the differences the Voting ResNet paper reports between
its split points. :func:`bootstrap_interval` gives the percentile bootstrap
confidence interval of a model's accuracy; :func:`mcnemar_p` the exact
McNemar test of two models scored on the same images, which looks only at the
images where exactly one of them is right.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from csa_keras.utils.messages import must

BOOTSTRAP_SAMPLES = 2000
"""Resamples of the test set behind a bootstrap interval."""


def _correct(values) -> np.ndarray:
    correct = np.asarray(values)
    if correct.ndim != 1 or len(correct) == 0:
        raise ValueError(must("correct", "be a non-empty 1-D array of right/wrong per image",
                              f"array of shape {correct.shape}"))
    return correct.astype(bool)


def bootstrap_interval(correct, confidence: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the accuracy of ``correct`` (one bool per image).

    The test images are resampled with replacement ``samples`` times (seeded,
    so the interval is reproducible) and the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled accuracies returned,
    both in [0, 1].
    """
    correct = _correct(correct)
    if not 0 < confidence < 1:
        raise ValueError(must("confidence", "lie in (0, 1)", confidence))
    if samples < 1:
        raise ValueError(must("samples", "be at least 1", samples))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(correct), size=(samples, len(correct)))
    accuracies = correct[draws].mean(axis=1)
    low, high = np.quantile(accuracies, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def mcnemar_p(correct_a, correct_b) -> float:
    """The two-sided exact McNemar p-value of two models scored on the same images.

    Of the images where exactly one model is right, the number where ``a``
    is right follows Binomial(n, 1/2) when the models are equally accurate;
    the p-value is that binomial test's. Images both get right or both get
    wrong say nothing about the difference. With no such image the models
    cannot be told apart: 1.0.
    """
    a, b = _correct(correct_a), _correct(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must score the same images. Received: "
                         f"{len(a)} and {len(b)} images")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(p_values) -> list[float | None]:
    """Holm's step-down correction of p-values tested together (Holm 1979).

    The ``m`` p-values are sorted; the ``i``-th smallest (from 0) is
    multiplied by ``m - i``, made no smaller than the one before it and capped
    at 1. Rejecting where the corrected value is below alpha keeps the chance
    of any false rejection among the ``m`` tests below alpha. ``None`` (a row
    without a test) stays ``None`` and does not count in ``m``.
    """
    values = list(p_values)
    tested = [(p, i) for i, p in enumerate(values) if p is not None]
    for p, _ in tested:
        if not 0.0 <= p <= 1.0:
            raise ValueError(must("p_values", "lie in [0, 1]", p))
    corrected: list[float | None] = [None] * len(values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        corrected[i] = running
    return corrected
