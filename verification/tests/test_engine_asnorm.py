"""Adaptive symmetric score normalisation (AS-norm): cohort speaker models, their scoring, the
normalisation statistics, and the background model fields that carry them (no Django)."""

import dataclasses
import io

import numpy as np
import pytest

from verification import engine, features
from verification.engine import evaluation, model, norm, scoring, train
from verification.engine.serialize import (
    ModelFormatError,
    dump_background_model,
    load_background_model,
)
from verification.tests.test_engine import random_gmm, small_background_model

DIMS = features.DEFAULT_CONFIG.n_dims  # of small_background_model


def asnorm_background_model(rng, top=2, n_models=5):
    ubm = small_background_model(rng)
    shifts = rng.normal(scale=0.3, size=(n_models, *ubm.means.shape))
    return dataclasses.replace(
        ubm,
        config=dataclasses.replace(ubm.config, asnorm_top=top),
        cohort_shifts=shifts.astype(np.float16).astype(np.float32),
    )


def _utterances(rng, n=3, frames=40):
    return [
        features.Utterance(
            rng.uniform(0.5, 50.0, size=(frames, 40)), rng.uniform(0.05, 0.3, size=frames), digit=d
        )
        for d in range(n)
    ]


def test_cohort_mean_llrs_equal_the_mean_llr_of_each_cohort_model():
    rng = np.random.default_rng(1)
    weights, means, variances = random_gmm(rng, 16, 6)
    shifts = rng.normal(scale=0.4, size=(7, 16, 6))
    X = rng.normal(size=(90, 6))
    frames = scoring.ubm_frames(X, weights, means, variances, top_c=4)
    fast = scoring.cohort_mean_llrs(frames, scoring.cohort_models(means, variances, shifts))
    slow = [scoring.mean_llr(X, weights, means, variances, means + s, top_c=4) for s in shifts]
    np.testing.assert_allclose(fast, slow, rtol=1e-6)


def test_top_statistics_use_the_highest_scores_only():
    scores = np.array([5.0, -1.0, 3.0, 0.0, 4.0])
    assert norm.top_statistics(scores, 3) == pytest.approx((4.0, np.std([5.0, 3.0, 4.0])))
    # top_n 0 or beyond the cohort: every score (plain z-norm statistics).
    assert norm.top_statistics(scores, 0) == norm.znorm_statistics(scores)
    assert norm.top_statistics(scores, 9) == norm.znorm_statistics(scores)


def test_symmetric_normalise_averages_both_sides():
    assert norm.symmetric_normalise(3.0, (1.0, 2.0), (0.0, 0.5)) == pytest.approx(0.5 * (1 + 6))


def test_enrolment_keeps_the_statistics_of_the_top_cohort_attempt_scores():
    rng = np.random.default_rng(2)
    ubm = asnorm_background_model(rng, top=1)
    spk = engine.enroll(ubm, _utterances(rng))
    cohort = model._cohort_scores(ubm, spk.means)
    assert (spk.znorm_mean, spk.znorm_std) == pytest.approx((cohort.max(), 1e-3))


def test_speaker_score_is_symmetrically_normalised_against_the_cohort_models():
    rng = np.random.default_rng(3)
    ubm = asnorm_background_model(rng, top=3)
    spk = engine.enroll(ubm, _utterances(rng))
    ceps = model.cepstra_many(ubm, _utterances(rng))
    X = np.concatenate(ceps).astype(np.float64)
    args = (ubm.weights, ubm.means, ubm.variances)
    raw = scoring.mean_llr(X, *args, spk.means, ubm.config.top_c)
    top_c = ubm.config.top_c
    cohort = [scoring.mean_llr(X, *args, ubm.means + s, top_c) for s in ubm.cohort_shifts]
    test_side = norm.znorm_statistics(np.sort(cohort)[-3:])
    expected = 0.5 * ((raw - spk.znorm_mean) / spk.znorm_std + (raw - test_side[0]) / test_side[1])
    assert model._speaker_score(ubm, spk, ceps) == pytest.approx(expected, rel=1e-6)
    # z-norm alone (asnorm_top 0) is a different score of the same attempt.
    znorm_ubm = dataclasses.replace(ubm, config=dataclasses.replace(ubm.config, asnorm_top=0))
    assert model._speaker_score(znorm_ubm, spk, ceps) != pytest.approx(expected, rel=1e-3)


def test_asnorm_without_cohort_models_is_refused():
    ubm = small_background_model(np.random.default_rng(4))
    with pytest.raises(ValueError, match="cohort speaker models"):
        dataclasses.replace(ubm, config=dataclasses.replace(ubm.config, asnorm_top=5))


def test_build_cohort_models_adapt_each_speaker_through_the_channels():
    rng = np.random.default_rng(5)
    weights, means, variances = random_gmm(rng, 4, 3)
    recs = [
        evaluation.Recording(str(d), s, i, "") for s in "abc" for d in range(2) for i in range(3)
    ]
    wide = [rng.normal(size=(int(rng.integers(5, 9)), 3)) for _ in recs]
    narrow = [c + 5.0 for c in wide]
    gmm = {"weights": weights, "means": means, "variances": variances, "relevance": 4.0}

    def build(channels, per_label=2, both=False):
        return train.build_cohort_models(
            recs, channels, **gmm, per_label=per_label, both_channels=both,
            rng=np.random.default_rng(0),
        )  # fmt: skip

    alternate, both = build([wide, narrow]), build([wide, narrow], both=True)
    assert alternate.shape == (3, 4, 3)
    assert both.shape == (6, 4, 3)
    np.testing.assert_array_equal(both, both.astype(np.float16).astype(np.float32))
    # Speakers a, c through the first channel, b through the second (same recordings each).
    np.testing.assert_array_equal(alternate, both[[0, 3, 4]])
    assert not np.allclose(both[0], both[1])
    assert build([wide], per_label=0).shape == (0, 4, 3)


def test_background_model_round_trip_keeps_the_cohort_models():
    ubm = asnorm_background_model(np.random.default_rng(6))
    loaded = load_background_model(dump_background_model(ubm))
    np.testing.assert_array_equal(loaded.cohort_shifts, ubm.cohort_shifts)
    assert loaded.config.asnorm_top == 2
    # Background models written before cohort models load without them.
    plain = small_background_model(np.random.default_rng(6))
    old = load_background_model(dump_background_model(plain))
    assert old.cohort_shifts.shape[0] == 0
    assert old.config.asnorm_top == 0


def test_znorm_configs_omit_asnorm_top_so_their_versions_stay_the_same():
    # Models written before AS-norm have no asnorm_top key; a z-norm config still writes none.
    assert "asnorm_top" not in engine.EngineConfig(asnorm_top=0).to_dict()
    assert engine.EngineConfig.from_dict(engine.EngineConfig().to_dict()).asnorm_top == 0
    config = engine.EngineConfig(asnorm_top=10)
    assert engine.EngineConfig.from_dict(config.to_dict()) == config


def _rewrite(blob: bytes, **changes) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    for name in [n for n, v in changes.items() if v is None]:
        del arrays[name]
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cohort_shifts": np.full((2, 4, DIMS), np.nan, np.float16)}, "NaN"),
        ({"cohort_shifts": np.zeros((2, 3, DIMS), np.float16)}, "shape"),
        ({"cohort_shifts": None}, "cohort speaker models"),
    ],
)
def test_background_model_with_bad_cohort_models_is_refused(change, message):
    blob = dump_background_model(asnorm_background_model(np.random.default_rng(7)))
    with pytest.raises(ModelFormatError, match=message):
        load_background_model(_rewrite(blob, **change))
