"""Metrics on cases whose answers are known by hand, plus the doctest examples of the module."""

import doctest

import numpy as np
import pytest

from verification.engine import evaluation, metrics


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


def _six_speakers(errors_per_speaker: list[int]) -> tuple[np.ndarray, ...]:
    """100 genuine scores of 2.0 per speaker, the given number of them lowered to -1.0 (each a
    miss at any threshold that keeps out the impostors, all at 0.0): the EER is the pooled
    fraction of lowered scores."""
    genuine, impostor, g_spk, i_spk = [], [], [], []
    for s, errors in enumerate(errors_per_speaker):
        genuine += [-1.0] * errors + [2.0] * (100 - errors)
        impostor += [0.0] * 100
        g_spk += [f"s{s}"] * 100
        i_spk += [f"s{s}"] * 100
    return np.array(genuine), np.array(impostor), np.array(g_spk), np.array(i_spk)


def test_eer_interval_holds_the_eer_and_is_reproducible():
    rng = np.random.default_rng(3)
    speakers = np.repeat([f"s{s}" for s in range(6)], 200)
    offsets = np.repeat(rng.normal(0.0, 0.7, 6), 200)  # some voices score lower than others
    genuine = rng.normal(2.5, 1.0, speakers.size) + offsets
    impostor = rng.normal(0.0, 1.0, speakers.size)
    args = (genuine, impostor, speakers, speakers)
    low, high = metrics.eer_interval(*args, rng=np.random.default_rng(0), n_boot=300)
    assert low < metrics.eer(genuine, impostor) < high
    assert metrics.eer_interval(*args, rng=np.random.default_rng(0), n_boot=300) == (low, high)


def test_eer_interval_is_wide_when_the_errors_come_from_one_speaker():
    spread = metrics.eer_interval(*_six_speakers([5] * 6), rng=np.random.default_rng(0))
    one = metrics.eer_interval(*_six_speakers([30, 0, 0, 0, 0, 0]), rng=np.random.default_rng(0))
    # Same pooled EER (5 %), but drawing the speakers again only moves it when one voice holds
    # every miss: that is the uncertainty a trial-level resampling would hide.
    assert metrics.eer(*_six_speakers([30, 0, 0, 0, 0, 0])[:2]) == pytest.approx(0.05)
    assert spread == pytest.approx((0.05, 0.05))
    assert one[0] == pytest.approx(0.0)
    assert one[1] >= 0.12


def test_eer_interval_skips_replicates_without_both_kinds_of_trial():
    # Speaker a only has genuine trials and b only impostor ones: about half the replicates
    # draw one of them twice and are skipped; the others separate perfectly.
    rng = np.random.default_rng(0)
    assert metrics.eer_interval([1.0], [0.0], ["a"], ["b"], rng=rng, n_boot=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="both genuine and impostor"):
        metrics.eer_interval([1.0], [], ["a"], np.array([], dtype=str), rng=rng, n_boot=5)


def test_per_speaker_rates_name_who_makes_the_errors():
    kinds = ["genuine"] * 4 + ["impostor"] * 4
    results = evaluation.TrialResults(
        kind=np.array(kinds),
        claimed=np.array(["a", "a", "b", "b", "a", "a", "b", "b"]),
        source=np.array(["a", "a", "b", "b", "b", "c", "a", "a"]),
        score=np.zeros(8),
        accepted=np.array([True, False, True, True, True, False, False, False]),
        wrong_content=np.zeros(8, dtype=bool),
    )
    rates = evaluation.per_speaker(results)
    assert rates["a"] == {
        "genuine_trials": 2,
        "frr": 50.0,  # one of a's two genuine attempts rejected
        "impostor_trials_claiming": 2,
        "far_as_claimed": 50.0,  # b got into a's account, c did not
        "impostor_trials_speaking": 2,
        "far_as_impostor": 0.0,  # a never got into b's
    }
    assert rates["b"]["frr"] == 0.0
    assert rates["b"]["far_as_impostor"] == 100.0
    # c only ever spoke as an impostor: no genuine trials, so no rate is made up for them
    assert rates["c"]["genuine_trials"] == 0
    assert rates["c"]["frr"] is None
    assert rates["c"]["far_as_impostor"] == 0.0
