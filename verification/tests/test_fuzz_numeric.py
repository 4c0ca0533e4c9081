"""Property-based fuzzing of the numeric core (Hypothesis): whatever float arrays a client sends,
validation refuses them with a FeatureError naming the field, or the engine returns a finite
score. Never NaN, never an unexpected exception.

No Django here: the shipped background model and a speaker model enrolled from fsdd are built
once with the engine alone. Runs are derandomised so CI is reproducible.
"""

from __future__ import annotations

import base64
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from verification import engine, features
from verification.engine import replay
from verification.management.commands.install_default_ubm import DEFAULT_PATH
from verification.tests.factories import GENUINE

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
HOSTILE = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, -1e-9, 20.000001, 1e6]
)


@pytest.fixture(scope="module")
def models(corpus):
    if not DEFAULT_PATH.is_file():
        pytest.fail(f"{DEFAULT_PATH} is missing (the engine ships it)")
    ubm = engine.load_background_model(DEFAULT_PATH.read_bytes())
    speaker = engine.enroll(ubm, corpus.enrollment(GENUINE, 3))
    return ubm, speaker


def _payload(mel: np.ndarray, rms: np.ndarray) -> dict:
    """JSON lists exactly as a client would send them (NaN/inf become JSON's NaN/Infinity)."""
    return {
        **{
            k: features.CONTRACT[k]
            for k in ("feature_version", "sample_rate", "frame_length", "hop_length", "window")
        },
        "mel_bands": mel.tolist(),
        "rms": rms.tolist(),
        "digit": 3,
    }


def _check(payload: dict, models, outcomes: list[str]) -> None:
    """The property: FeatureError naming a field, or finite numbers all the way through."""
    ubm, speaker = models
    error = None
    try:
        utt = features.parse_utterance(payload, field="utterance")
    except features.FeatureError as exc:
        error = exc
    if error is not None:
        assert error.field.startswith("utterance")
        assert error.message
        outcomes.append("refused")
        return
    assert np.isfinite(utt.mel_bands).all()
    assert np.isfinite(utt.rms).all()
    ceps = features.cepstra(utt, ubm.cepstra_config)
    assert np.isfinite(ceps).all()
    score = engine.score(ubm, speaker, [utt])
    assert math.isfinite(score), score
    verdict = engine.verify(ubm, speaker, [3], [utt])
    assert math.isfinite(verdict.score), verdict
    assert verdict.reason in ("accepted", "low_score", "wrong_content")
    fp = replay.fingerprint(utt.mel_bands)
    assert not math.isnan(replay.aligned_distance(fp, fp))
    assert not math.isnan(replay.change_distance(fp, fp))
    assert not np.isnan(replay.centred_distances(fp, [fp])).any()
    outcomes.append("scored")


def test_random_float_matrices_are_refused_or_scored_finitely(models):
    outcomes: list[str] = []

    @FUZZ
    @given(
        n=st.integers(0, 80),
        data=st.data(),
    )
    def run(n, data):
        mel_elements = st.one_of(st.floats(0, 12), ANY_FLOAT)
        mel = data.draw(arrays(np.float64, (n, 40), elements=mel_elements))
        rms = data.draw(arrays(np.float64, (n,), elements=st.one_of(st.floats(0, 1.5), ANY_FLOAT)))
        _check(_payload(mel, rms), models, outcomes)

    run()
    assert "refused" in outcomes


def test_perturbed_real_utterances_are_refused_or_scored_finitely(models, corpus):
    """Real features with hostile edits (cells replaced, rows dropped, scaled, offset, rms
    altered): the edits that survive validation must still score finitely."""
    base = corpus.utterance(GENUINE, 3, 25)
    outcomes: list[str] = []

    @FUZZ
    @given(
        cells=st.lists(
            st.tuples(st.integers(0, base.n_frames - 1), st.integers(0, 39), HOSTILE), max_size=3
        ),
        scale=st.floats(0.0, 3.0),
        offset=st.floats(-2.0, 2.0),
        keep=st.integers(0, base.n_frames),
        rms_scale=st.floats(0.0, 10.0),
    )
    def run(cells, scale, offset, keep, rms_scale):
        mel = base.mel_bands.astype(np.float64) * scale + offset
        rms = base.rms.astype(np.float64) * rms_scale
        for i, j, value in cells:
            mel[i, j] = value
        _check(_payload(mel[:keep], rms[:keep]), models, outcomes)

    run()
    assert "refused" in outcomes
    assert "scored" in outcomes


def test_random_base64_payloads_are_refused_or_scored_finitely(models):
    outcomes: list[str] = []

    @FUZZ
    @given(
        encoding=st.sampled_from(["float16", "float32"]),
        frames=st.integers(0, 60),
        raw=st.data(),
    )
    def run(encoding, frames, raw):
        size = 2 if encoding == "float16" else 4
        mel_bytes = raw.draw(st.binary(min_size=frames * 40 * size, max_size=frames * 40 * size))
        rms_bytes = raw.draw(st.binary(min_size=frames * size, max_size=frames * size + 3))
        payload = _payload(np.zeros((0, 40)), np.zeros(0))
        del payload["mel_bands"], payload["rms"]
        payload.update(
            encoding=encoding,
            mel_bands_b64=base64.b64encode(mel_bytes).decode(),
            rms_b64=base64.b64encode(rms_bytes).decode(),
        )
        _check(payload, models, outcomes)

    run()
    assert "refused" in outcomes


@FUZZ
@given(mel=arrays(np.float64, st.tuples(st.integers(0, 40), st.just(40)), elements=ANY_FLOAT))
def test_replay_fingerprint_of_any_matrix_is_defined(mel):
    """The fingerprint never propagates NaN, whatever reaches it."""
    fp = replay.fingerprint(mel)
    assert fp.dtype == np.uint8
    assert fp.shape == (mel.shape[0], replay.FINGERPRINT_BANDS)
    assert not math.isnan(replay.aligned_distance(fp, fp))
    assert not math.isnan(replay.change_distance(fp, fp))
    assert not np.isnan(replay.centred_distances(fp, [fp])).any()
