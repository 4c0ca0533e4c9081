"""Unit tests of the engine's model layer, training helpers and corpus reading (no Django).

Synthetic arrays where a hand-checkable answer exists; the shipped background model and real fsdd
recordings where the behaviour only means something on speech.
"""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from verification import engine, features
from verification.engine import corpus, evaluation, train
from verification.engine.model import AttemptScores, EngineConfig, decide
from verification.engine.scoring import mean_llr, segment_means
from verification.management.commands.install_default_ubm import DEFAULT_PATH
from verification.tests.availability import require
from verification.tests.test_engine import small_background_model


def _required(path: Path, what: str) -> Path:
    require(path.exists(), f"{what} {path} is absent")
    return path


@pytest.fixture(scope="module")
def shipped_ubm() -> engine.BackgroundModel:
    return engine.load_background_model(_required(DEFAULT_PATH, "shipped UBM").read_bytes())


@pytest.fixture(scope="module")
def fsdd() -> Path:
    return _required(Path(settings.SPEAKERAUTH_CORPUS_DIR) / "fsdd", "corpus folder")


def speaker_only_ubm(seed=10):
    """A small UBM (threshold 0.25) whose decisions use the speaker score alone (no fusion)."""
    ubm = small_background_model(np.random.default_rng(seed))
    return dataclasses.replace(ubm, config=EngineConfig(fusion_weight=0.0))


def scores(own, other, speaker=1.0):
    return AttemptScores(speaker, np.array(own, float), np.array(other, float), 100)


def test_segment_means_average_each_segment():
    values = np.array([1.0, 3.0, 10.0, 0.0, 2.0, 4.0])
    np.testing.assert_allclose(segment_means(values, np.array([2, 1, 3])), [2.0, 10.0, 2.0])


def test_cohort_scores_equal_the_mean_llr_of_each_cohort_attempt():
    ubm = small_background_model(np.random.default_rng(8))
    means = ubm.means + np.random.default_rng(9).normal(scale=0.3, size=ubm.means.shape)
    fast = engine.model._cohort_scores(ubm, means)
    attempts = np.split(ubm.cohort_frames.astype(np.float64), np.cumsum(ubm.cohort_lengths)[:-1])
    slow = [
        mean_llr(a, ubm.weights, ubm.means, ubm.variances, means, ubm.config.top_c)
        for a in attempts
    ]
    # The speaker side runs on the stored float32 frames: float32 rounding, not a different sum.
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)


def test_content_log_ratio_is_negative_when_the_prompted_digit_matches_best():
    ratios = scores([1.0, 2.0], [2.0, 1.0]).content_log_ratios
    np.testing.assert_allclose(ratios, [np.log(0.5), np.log(2.0)])


def test_content_log_ratio_of_an_utterance_without_speech_is_infinite():
    ratios = scores([1.0, np.inf], [2.0, np.inf]).content_log_ratios
    assert np.isinf(ratios[1])
    assert ratios[1] > 0


def test_decide_rejects_wrong_content_whatever_the_score():
    ubm = speaker_only_ubm()
    verdict = decide(ubm, scores([3.0, 3.0], [1.0, 1.0], speaker=50.0))
    assert (verdict.accepted, verdict.reason) == (False, engine.REASON_WRONG_CONTENT)


def test_decide_absorbs_one_slip_when_the_mean_ratio_is_below_the_limit():
    ubm = speaker_only_ubm()
    # Second utterance matched another digit slightly better; the attempt's mean ratio is < 0.
    verdict = decide(ubm, scores([1.0, 1.1, 1.0], [2.0, 1.0, 2.0], speaker=1.0))
    assert (verdict.accepted, verdict.reason) == (True, engine.REASON_ACCEPTED)


def test_decide_rejects_a_low_score_with_the_right_content():
    ubm = speaker_only_ubm()
    verdict = decide(ubm, scores([1.0], [2.0], speaker=0.2))
    assert (verdict.accepted, verdict.reason) == (False, engine.REASON_LOW_SCORE)
    assert verdict.score == pytest.approx(0.2)


def test_fusion_adds_the_weighted_text_dependent_score():
    config = EngineConfig(fusion_weight=0.5)
    assert scores([2.0, 4.0], [5.0, 5.0], speaker=1.0).fused(config) == pytest.approx(1.0 - 1.5)


def test_build_cohort_rounds_frames_to_float16_and_keeps_attempt_lengths():
    rng = np.random.default_rng(12)
    recs = [
        evaluation.Recording(str(d), s, i, "") for s in "ab" for d in range(4) for i in range(2)
    ]
    ceps = [rng.normal(size=(int(rng.integers(5, 9)), 3)).astype(np.float32) for _ in recs]
    frames, lengths = train.build_cohort(recs, ceps, n_attempts=4, per_attempt=3, rng=rng)
    assert lengths.shape == (4,)
    assert frames.shape == (int(lengths.sum()), 3)
    np.testing.assert_array_equal(frames, frames.astype(np.float16).astype(np.float32))


def test_split_enrols_the_lowest_indices_or_spreads_them_over_the_sittings():
    # Speaker a says digit 0 ten times (indices 0..9, listed out of order) and digit 1 twice.
    recs = [evaluation.Recording("0", "a", i, "") for i in (5, 0, 9, 3, 1, 8, 2, 7, 4, 6)]
    recs += [evaluation.Recording("1", "a", i, "") for i in (0, 1)]

    def indices(positions):
        return sorted(recs[p].index for p in positions)

    lowest = evaluation.split_recordings(recs, 3)
    spread = evaluation.split_recordings(recs, 3, spread=True)
    digit_0 = [p for p in range(len(recs)) if recs[p].label == "0"]
    assert indices(set(lowest.enroll["a"]) & set(digit_0)) == [0, 1, 2]
    assert indices(set(spread.enroll["a"]) & set(digit_0)) == [0, 4, 9]  # first, middle, last
    assert indices(spread.test["a"][0]) == [1, 2, 3, 5, 6, 7, 8]
    # Digit 1 has only two takes: both enrol either way, and it has no test pool.
    assert indices(set(spread.enroll["a"]) - set(digit_0)) == [0, 1]
    assert 1 not in spread.test["a"]


def test_speaker_folds_partition_the_speakers():
    folds = train.speaker_folds([f"s{i}" for i in range(10)] * 3, 3, seed=1)
    assert sorted(s for f in folds for s in f) == sorted(f"s{i}" for i in range(10))
    assert sorted(len(f) for f in folds) == [3, 3, 4]


def test_model_version_depends_on_the_parameters_only():
    rng = np.random.default_rng(13)
    w, m, v = rng.dirichlet(np.ones(3)), rng.normal(size=(3, 2)), np.ones((3, 2))
    assert train.model_version("x", w, m, v) == train.model_version("x", w, m.copy(), v)
    assert train.model_version("x", w, m, v) != train.model_version("x", w, m + 1e-3, v)


def test_list_recordings_selects_and_excludes_speakers(fsdd):
    chosen = corpus.list_recordings(fsdd, speakers=["george", "theo"], exclude_speakers=["theo"])
    assert {r.speaker for r in chosen} == {"george"}
    assert len(chosen) == 500


def test_list_recordings_names_unknown_speakers(fsdd):
    with pytest.raises(ValueError, match="nobody"):
        corpus.list_recordings(fsdd, speakers=["nobody"])


def test_cached_features_equal_fresh_extraction(fsdd, tmp_path):
    for i in range(3):
        shutil.copy(fsdd / f"{i}_george_0.wav", tmp_path)
    recs = corpus.list_recordings(tmp_path)
    fresh = corpus.load_utterances(recs, cache_dir=tmp_path / "cache")
    cached = corpus.load_utterances(recs, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    for a, b in zip(fresh, cached, strict=True):
        np.testing.assert_array_equal(a.mel_bands, b.mel_bands)
        np.testing.assert_array_equal(a.rms, b.rms)


def _george(fsdd):
    recs = corpus.list_recordings(fsdd, speakers=["george", "jackson"])
    utts = corpus.load_utterances(recs)
    split = evaluation.split_recordings(recs, 3)
    return recs, utts, split


def test_enroll_adapts_means_and_keeps_a_template_per_utterance(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    model = evaluation.enroll_speakers(shipped_ubm, recs, utts, split, ["george"])["george"]
    assert model.means.shape == shipped_ubm.means.shape
    assert not np.allclose(model.means, shipped_ubm.means)
    assert model.digits == list(range(10))
    assert model.template_lengths.shape == (30,)
    assert model.znorm_std > 0


def test_enroll_more_gives_the_model_of_enrolling_everything_at_once(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    ids = evaluation.label_ids(recs)
    enrolment = [
        features.Utterance(utts[p].mel_bands, utts[p].rms, ids[recs[p].label])
        for p in split.enroll["george"]
    ]
    first, more = enrolment[:20], enrolment[20:]
    everything = engine.enroll(shipped_ubm, enrolment)

    step = engine.enroll(shipped_ubm, first)
    for utterance in more:
        step = engine.enroll_more(shipped_ubm, step, [utterance])

    np.testing.assert_allclose(step.means, everything.means, rtol=0, atol=1e-10)
    np.testing.assert_allclose(step.stat_counts, everything.stat_counts, rtol=1e-10)
    assert step.znorm_mean == pytest.approx(everything.znorm_mean, abs=1e-10)
    assert step.znorm_std == pytest.approx(everything.znorm_std, abs=1e-10)
    assert np.array_equal(step.template_frames, everything.template_frames)
    assert np.array_equal(step.template_digits, everything.template_digits)
    assert step.n_utterances == everything.n_utterances == len(enrolment)


def test_enroll_more_refuses_a_model_without_statistics(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    model = evaluation.enroll_speakers(shipped_ubm, recs, utts, split, ["george"])["george"]
    old = dataclasses.replace(model, stat_counts=np.zeros(0))
    with pytest.raises(ValueError, match="re-enrol"):
        engine.enroll_more(shipped_ubm, old, [utts[0]])


def _attempt(utts, split, speaker, digits, pick=0):
    return [
        features.Utterance(utts[split.test[speaker][d][pick]].mel_bands,
                           utts[split.test[speaker][d][pick]].rms)
        for d in digits
    ]  # fmt: skip


def test_verify_accepts_the_enrolled_speaker_saying_the_prompt(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    model = evaluation.enroll_speakers(shipped_ubm, recs, utts, split, ["george"])["george"]
    prompt = [3, 1, 4, 5, 9]
    verdict = engine.verify(shipped_ubm, model, prompt, _attempt(utts, split, "george", prompt))
    assert (verdict.accepted, verdict.reason) == (True, engine.REASON_ACCEPTED)


def test_verify_rejects_another_speaker_saying_the_prompt(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    model = evaluation.enroll_speakers(shipped_ubm, recs, utts, split, ["george"])["george"]
    prompt = [3, 1, 4, 5, 9]
    verdict = engine.verify(shipped_ubm, model, prompt, _attempt(utts, split, "jackson", prompt))
    assert verdict.accepted is False


def test_verify_rejects_the_enrolled_speaker_saying_other_digits(shipped_ubm, fsdd):
    recs, utts, split = _george(fsdd)
    model = evaluation.enroll_speakers(shipped_ubm, recs, utts, split, ["george"])["george"]
    said = _attempt(utts, split, "george", [0, 2, 6, 7, 8])
    verdict = engine.verify(shipped_ubm, model, [3, 1, 4, 5, 9], said)
    assert (verdict.accepted, verdict.reason) == (False, engine.REASON_WRONG_CONTENT)
