"""Metrics on cases whose answers are known by hand, plus the doctest examples of the module."""

import doctest

import numpy as np
import pytest

from verification.engine import metrics


def test_doctest_examples_hold():
    result = doctest.testmod(metrics)
    assert result.attempted > 0
    assert result.failed == 0


def test_eer_of_separated_scores_is_zero():
    assert metrics.eer([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0]) == 0.0


def test_eer_of_identical_distributions_is_one_half():
    scores = np.arange(100.0)
    assert metrics.eer(scores, scores) == pytest.approx(0.5, abs=0.01)


def test_eer_with_one_overlapping_pair_of_ten():
    genuine = np.arange(10.0) + 0.5  # 0.5 .. 9.5
    impostor = np.arange(10.0) - 9.0  # -9 .. 0
    impostor[-1] = 1.0  # one impostor above the lowest genuine score: FAR = FRR = 1/10
    assert metrics.eer(genuine, impostor) == pytest.approx(0.1)


def test_eer_threshold_separates_at_the_crossing():
    rng = np.random.default_rng(0)
    genuine = rng.normal(2.0, 1.0, 5000)
    impostor = rng.normal(0.0, 1.0, 5000)
    rate, threshold = metrics.eer_threshold(genuine, impostor)
    far, frr = metrics.rates_at_threshold(genuine, impostor, threshold)
    assert threshold == pytest.approx(1.0, abs=0.1)
    assert far == pytest.approx(rate, abs=0.01)
    assert frr == pytest.approx(rate, abs=0.01)


def test_min_dcf_of_a_perfect_system_is_zero_and_of_a_useless_one_is_one():
    assert metrics.min_dcf([5.0, 6.0], [0.0, 1.0]) == 0.0
    assert metrics.min_dcf([0.0], [1.0]) == pytest.approx(1.0)


def test_frr_at_far_one_percent():
    impostor = np.arange(100.0)  # FAR <= 1 % needs threshold above 98
    genuine = np.array([50.0, 99.5, 120.0, 130.0])
    assert metrics.frr_at_far(genuine, impostor, 0.01) == pytest.approx(0.25)


def test_rates_at_threshold_accept_ties():
    assert metrics.rates_at_threshold([1.0], [1.0], 1.0) == (1.0, 0.0)
