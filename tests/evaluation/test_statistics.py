"""Bootstrap intervals and McNemar tests against hand computations."""
import math

import numpy as np
import pytest

from csa_keras.evaluation.statistics import bootstrap_interval, holm, mcnemar_p


def test_bootstrap_interval_brackets_the_accuracy_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    small = rng.random(200) < 0.6
    large = rng.random(5000) < 0.6
    low_s, high_s = bootstrap_interval(small, seed=0)
    low_l, high_l = bootstrap_interval(large, seed=0)
    assert 0.0 <= low_s <= small.mean() <= high_s <= 1.0
    assert low_l <= large.mean() <= high_l
    assert (high_l - low_l) < (high_s - low_s)
    # the normal approximation's width: 2 * 1.96 * sqrt(p(1-p)/n)
    expected = 2 * 1.96 * math.sqrt(large.mean() * (1 - large.mean()) / len(large))
    assert (high_l - low_l) == pytest.approx(expected, rel=0.15)


def test_bootstrap_interval_is_reproducible_and_degenerate_when_all_right():
    correct = np.array([True, False] * 50)
    assert bootstrap_interval(correct, seed=3) == bootstrap_interval(correct, seed=3)
    assert bootstrap_interval(np.ones(30, bool)) == (1.0, 1.0)


def test_mcnemar_matches_the_exact_binomial_by_hand():
    # 10 images only a is right, 2 only b is right, 50 both, 38 neither
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 38, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 38, bool)
    n, k = 12, 2
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    assert mcnemar_p(a, b) == pytest.approx(min(1.0, 2 * tail))
    assert mcnemar_p(a, b) == pytest.approx(mcnemar_p(b, a))


def test_mcnemar_of_identical_models_is_one_and_shapes_must_agree():
    a = np.array([True, False, True])
    assert mcnemar_p(a, a) == 1.0
    with pytest.raises(ValueError, match="same images"):
        mcnemar_p(a, a[:2])
    with pytest.raises(ValueError, match="correct must be"):
        bootstrap_interval(np.array([]))


def test_holm_by_hand_keeps_order_and_untested_rows():
    # sorted 0.01, 0.03, 0.04 (m = 3): 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)
    corrected = holm([0.01, 0.04, 0.03, None])
    assert corrected[3] is None
    assert corrected[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError, match="p_values must lie in"):
        holm([0.2, 1.5])
