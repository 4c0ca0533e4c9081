"""Replay of features: copies of a user's enrollment utterances or recent attempts are refused.

The attacker holds feature arrays the server has seen (an intercepted enrollment upload or an
earlier verification) and posts them again: bit-exact, with 1 % Gaussian noise, shifted or
cropped by 1-5 frames, or changed where the engine does not look (each frame or each mel band
attenuated by up to 10 dB, a fifth of the frames dropped or repeated). Different takes of the
same speaker saying the same digit must pass.
"""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
from django.urls import reverse

from verification import services
from verification.engine import replay
from verification.features import Utterance
from verification.models import (
    Challenge,
    Decision,
    EnrollmentUtterance,
    Reason,
    ReplayFingerprint,
    VerificationAttempt,
    VerificationLockout,
)
from verification.tests.factories import ANSWER_INDEX, GENUINE, payload, prompt

DIGITS = "31452"
CLIENT = services.ClientInfo(ip="192.0.2.7", user_agent="replay-test")


def _gains(mel: np.ndarray, attenuation_db: np.ndarray) -> np.ndarray:
    """Meyda melBands with each band energy attenuated by ``attenuation_db`` (broadcast)."""
    return np.log1p(np.expm1(mel) * 10 ** (-attenuation_db / 10))


def _tamper(utt: Utterance, how: str, rng: np.random.Generator) -> Utterance:
    """A copy of ``utt`` altered the way an attacker would, to dodge an equality test."""
    mel = utt.mel_bands.astype(np.float64)
    rms = utt.rms.astype(np.float64)
    kind, _, amount = how.partition(":")
    k = int(amount) if amount else 0
    # "<kind>+noise": that alteration, then 3 % noise (the changes' blind spot) on top.
    noisy = kind.endswith("+noise")
    kind = kind.removesuffix("+noise")
    n = len(mel)
    if kind == "noise":  # 1 % (or k %) multiplicative Gaussian noise on every value
        sigma = (k or 1) / 100
        mel = mel * (1 + sigma * rng.standard_normal(mel.shape))
        rms = rms * (1 + sigma * rng.standard_normal(rms.shape))
    elif kind == "noise_abs":  # additive, sigma = 1 % of the matrix's spread, clipped at 0
        mel = np.clip(mel + 0.01 * mel.std() * rng.standard_normal(mel.shape), 0, None)
    elif kind == "shift":  # the first k frames dropped (the copy starts later)
        mel, rms = mel[k:], rms[k:]
    elif kind == "crop":  # the last k frames dropped
        mel, rms = mel[:-k], rms[:-k]
    elif kind == "pad":  # k frames of the start repeated in front (the copy starts earlier)
        mel, rms = np.vstack([mel[:k], mel]), np.concatenate([rms[:k], rms])
    elif kind == "framegain":  # each frame attenuated by 0..k dB (the engine drops c0)
        mel = _gains(mel, rng.uniform(0, k, size=(n, 1)))
    elif kind == "bandgain":  # each mel band attenuated by 0..k dB (mean normalisation removes it)
        mel = _gains(mel, rng.uniform(0, k, size=(1, mel.shape[1])))
    elif kind == "tilt":  # each frame and each band attenuated by 0..k dB
        mel = _gains(mel, rng.uniform(0, k, size=(n, 1)) + rng.uniform(0, k, size=(1, 40)))
    elif kind == "drop":  # k % of the frames dropped here and there
        kept = rng.random(n) >= k / 100
        mel, rms = mel[kept], rms[kept]
    elif kind == "repeat":  # k % of the frames said twice
        index = np.sort(np.concatenate([np.arange(n), rng.choice(n, n * k // 100)]))
        mel, rms = mel[index], rms[index]
    elif kind != "exact":
        raise ValueError(how)
    if noisy:
        mel = mel * (1 + 0.03 * rng.standard_normal(mel.shape))
    return Utterance(mel_bands=mel, rms=rms, digit=None)


# Copies an equality test misses, caught aligned: noisy, shifted, cropped or padded.
ALIGNED_ATTACKS = [
    "exact",
    "noise",
    "noise:3",
    "noise_abs",
    *(f"{kind}:{k}" for kind in ("shift", "crop", "pad") for k in range(1, 6)),
]
# Copies changed where the engine does not look (it drops each frame's level, removes each
# band's mean and keeps no frame order beyond the deltas), caught by their changes; the first
# ones no alignment lines up.
UNALIGNED_ATTACKS = ["framegain:10", "bandgain:10", "tilt:6", "drop:20", "repeat:20"]
CHANGE_ATTACKS = [*UNALIGNED_ATTACKS, "exact", "shift:5", "crop:5", "pad:3"]
ATTACKS = [*ALIGNED_ATTACKS, *UNALIGNED_ATTACKS, "bandgain+noise:10", "framegain+noise:10"]


def _verify(user, utterances, digits: str = DIGITS):
    challenge = services.challenge_create(user=user)
    prompt(challenge.nonce, digits)
    return services.verification_score(
        user=user, challenge_id=challenge.nonce, utterances=utterances, client=CLIENT
    ).attempt


# --------------------------------------------------------------------------------------------------
# The numeric core, on real recordings


@pytest.mark.parametrize("how", ALIGNED_ATTACKS)
def test_aligned_distance_of_a_noisy_or_shifted_copy_is_below_its_threshold(corpus, how):
    rng = np.random.default_rng(7)
    for digit in range(10):
        original = replay.fingerprint(corpus.utterance(GENUINE, digit, 0).mel_bands)
        copy = replay.fingerprint(_tamper(corpus.utterance(GENUINE, digit, 0), how, rng).mel_bands)
        assert replay.aligned_distance(copy, original) < replay.ALIGNED_DISTANCE, (digit, how)
        assert replay.is_replay(copy, [original])


@pytest.mark.parametrize("how", CHANGE_ATTACKS)
def test_change_distance_of_a_rescaled_tilted_thinned_or_stuttered_copy_is_below_its_threshold(
    corpus, how
):
    rng = np.random.default_rng(7)
    aligned = []
    for digit in range(10):
        original = replay.fingerprint(corpus.utterance(GENUINE, digit, 0).mel_bands)
        copy = replay.fingerprint(_tamper(corpus.utterance(GENUINE, digit, 0), how, rng).mel_bands)
        assert replay.change_distance(copy, original) < replay.CHANGE_DISTANCE, (digit, how)
        assert replay.is_replay(copy, [original])
        aligned.append(replay.aligned_distance(copy, original))
    if how in ("framegain:10", "bandgain:10", "tilt:6"):  # the alignment's blind spots
        assert np.median(aligned) > replay.ALIGNED_DISTANCE


@pytest.mark.parametrize("how", ["bandgain+noise:10", "framegain+noise:10"])
def test_centred_distance_of_a_gained_noisy_copy_is_below_its_threshold(corpus, how):
    rng = np.random.default_rng(7)
    centred, aligned, changes = [], [], []
    for digit in range(10):
        original = replay.fingerprint(corpus.utterance(GENUINE, digit, 0).mel_bands)
        copy = replay.fingerprint(_tamper(corpus.utterance(GENUINE, digit, 0), how, rng).mel_bands)
        centred.append(replay.centred_distances(copy, [original])[0])
        aligned.append(replay.aligned_distance(copy, original))
        changes.append(replay.change_distance(copy, original))
        assert replay.is_replay(copy, [original])
    assert max(centred) < replay.CENTRED_DISTANCE
    # What the centring adds: the other two measures miss most of these copies.
    assert np.median(aligned) > replay.ALIGNED_DISTANCE
    assert np.median(changes) > replay.CHANGE_DISTANCE


def test_polishing_catches_copies_with_frame_and_band_gains_and_noise(corpus, monkeypatch):
    def caught() -> int:
        rng = np.random.default_rng(7)
        found = 0
        for digit in range(10):
            for i in range(3):
                utt = corpus.utterance(GENUINE, digit, i)
                copy = replay.fingerprint(_tamper(utt, "tilt+noise:6", rng).mel_bands)
                found += replay.is_replay(copy, [replay.fingerprint(utt.mel_bands)])
        return found

    polished = caught()
    monkeypatch.setattr(replay, "MIN_POLISHED_FRAMES", 10**6)  # by band or by frame only
    assert polished >= 20  # of 30 (23 when written)
    assert polished >= caught() + 4  # (17 when written)


def test_different_takes_of_one_digit_are_not_copies(corpus):
    for digit in range(10):
        takes = [
            replay.fingerprint(corpus.utterance(GENUINE, digit, i).mel_bands) for i in range(6)
        ]
        for a, b in itertools.permutations(takes, 2):
            assert replay.change_distance(a, b) > replay.CHANGE_DISTANCE
            assert replay.aligned_distance(a, b) > replay.ALIGNED_DISTANCE
            assert replay.centred_distances(a, [b])[0] >= replay.CENTRED_DISTANCE
            assert not replay.is_replay(a, [b])


def test_fingerprint_survives_a_gain_change(corpus):
    original = replay.fingerprint(corpus.utterance(GENUINE, 4, 0).mel_bands)
    mel = corpus.utterance(GENUINE, 4, 0).mel_bands.astype(np.float64)
    louder = replay.fingerprint(np.log1p(np.expm1(mel) * 4.0))  # +6 dB
    assert replay.aligned_distance(louder, original) < replay.ALIGNED_DISTANCE
    assert replay.change_distance(louder, original) < replay.CHANGE_DISTANCE


def test_fingerprint_round_trips_through_bytes(corpus):
    fp = replay.fingerprint(corpus.utterance(GENUINE, 2, 0).mel_bands)
    assert np.array_equal(replay.unpack(replay.pack(fp)), fp)
    assert fp.dtype == np.uint8
    assert fp.shape[1] == replay.FINGERPRINT_BANDS
    with pytest.raises(ValueError, match="multiple"):
        replay.unpack(replay.pack(fp)[:-20])  # a 20-band fingerprint of the earlier format


@pytest.mark.parametrize("bad", [256, -1])
def test_levels_no_fingerprint_holds_are_refused(bad):
    ok = np.full((30, 40), 100, dtype=np.int64)
    wrong = ok.copy()
    wrong[3, 4] = bad
    with pytest.raises(ValueError, match="0..255"):
        replay.change_distances(wrong, [ok])
    with pytest.raises(ValueError, match="0..255"):
        replay.aligned_distances(wrong, [ok])
    with pytest.raises(ValueError, match="0..255"):
        replay.aligned_distances(ok, [ok, wrong])
    with pytest.raises(ValueError, match="0..255"):
        replay.is_replay(ok, [ok, wrong])


def test_fingerprints_of_another_width_are_refused():
    ok = np.full((30, 40), 100, dtype=np.uint8)
    with pytest.raises(ValueError, match="shape"):
        replay.change_distances(np.zeros((5, 20), np.uint8), [ok])
    with pytest.raises(ValueError, match="shape"):
        replay.change_distances(ok, [ok, np.zeros((5, 20), np.uint8)])
    with pytest.raises(ValueError, match="shape"):
        replay.aligned_distances(np.zeros((5, 20), np.uint8), [ok])


def test_silence_fingerprint_is_all_floor_and_matches_nothing():
    silent = replay.fingerprint(np.zeros((30, 40)))
    assert not silent.any()
    assert replay.change_distance(silent, silent) == np.inf
    assert replay.aligned_distance(silent, silent) == np.inf


def _reference_change_distance(probe: np.ndarray, ref: np.ndarray) -> float:
    """The definition of ``replay.change_distance``, one change at a time (slow, plain)."""

    def changes(fp, loud_db, lags):
        fp = fp.astype(np.float64)
        loud = [f.max() > 0 and f.max() >= fp.max() - loud_db * replay._LEVELS_PER_DB for f in fp]
        range_levels = replay.BAND_RANGE_DB * replay._LEVELS_PER_DB
        bright = [(f > 0) & (f >= f.max() - range_levels) for f in fp]
        return [
            (fp[t] - fp[t - lag], bright[t] & bright[t - lag])
            for lag in lags
            for t in range(lag, len(fp))
            if loud[t] and loud[t - lag]
        ]

    def rms(p, p_bands, q, q_bands):
        both = p_bands & q_bands
        if both.sum() < replay.MIN_BANDS:
            return np.inf
        d = (p - q)[both]
        return np.sqrt(np.mean((d - d.mean()) ** 2))

    mine = [
        (p, bands)
        for p, bands in changes(probe, replay.PROBE_LOUD_DB, replay.PROBE_LAGS)
        if bands.sum() >= replay.MIN_BANDS
        and np.std(p[bands]) >= replay.MIN_CHANGE * replay.LEVELS_PER_LN
    ]
    theirs = changes(ref, replay.REFERENCE_LOUD_DB, replay.REFERENCE_LAGS)
    if len(mine) < replay.MIN_CHANGES or not theirs:
        return np.inf
    nearest = [min(rms(p, bands, *other) for other in theirs) for p, bands in mine]
    return float(np.median(nearest)) / replay.LEVELS_PER_LN


def test_batched_change_distances_equal_the_definition(corpus):
    rng = np.random.default_rng(5)
    takes = [replay.fingerprint(corpus.utterance(GENUINE, 6, i).mel_bands) for i in range(4)]
    copies = [replay.fingerprint(_tamper(corpus.utterance(GENUINE, 6, 0), how, rng).mel_bands)
              for how in ("noise", "drop:20", "tilt:6")]  # fmt: skip
    noise = [rng.integers(0, 256, size=(n, 40)).astype(np.uint8) for n in (3, 25, 60)]
    fingerprints = [
        *takes,
        *copies,
        *noise,
        np.zeros((0, 40), np.uint8),
        np.zeros((9, 40), np.uint8),
        np.full((1, 40), 50, np.uint8),
    ]
    compared = 0
    for probe in fingerprints:
        expected = [_reference_change_distance(probe, ref) for ref in fingerprints]
        got = replay.change_distances(probe, fingerprints)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        compared += int(np.isfinite(got).sum())
    assert compared > 50  # most pairs are compared, not just refused as inf


def _reference_lags(a: np.ndarray, b: np.ndarray):
    """The coarse fingerprints of reference ``a`` and probe ``b`` (int64) and the lags the
    alignment considers, as [(lag, j)] with b[j] facing a[j + lag], closest frame profiles
    first (the earlier lag on a tie); None when their lengths rule out a copy."""
    a, b = (c.astype(np.int64) for c in replay._coarse([a, b]))
    max_lag = replay.MAX_LAG
    if min(len(a), len(b)) == 0 or abs(len(a) - len(b)) > 2 * max_lag:
        return None
    profile_a, profile_b = (np.maximum(c - replay._ACTIVE_INT, 0).sum(axis=1) for c in (a, b))
    candidates = []
    for lag in range(-max_lag, max_lag + 1):
        j = np.arange(len(b))
        j = j[(j + lag >= 0) & (j + lag < len(a))]
        if j.size == 0 or j.size < replay.MIN_OVERLAP * min(len(a), len(b)):
            continue
        d = profile_a[j + lag] - profile_b[j]
        mean = int(d.sum()) / j.size
        candidates.append((int((d * d).sum()) / j.size - mean * mean, lag, j))
    return a, b, [(lag, j) for _, lag, j in sorted(candidates, key=lambda c: c[:2])]


def _reference_aligned_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The definition of ``replay.aligned_distance``, one lag at a time with np.median (slow,
    plain), on the coarse fingerprints: the CANDIDATE_LAGS lags with the closest frame
    profiles are measured."""
    found = _reference_lags(a, b)
    if found is None:
        return np.inf
    a, b, lags = found
    best = np.inf
    for lag, j in lags[: replay.CANDIDATE_LAGS]:
        x, y = a[j + lag], b[j]
        active = (x > replay._ACTIVE_LEVEL) | (y > replay._ACTIVE_LEVEL)
        if active.sum() < replay.MIN_ACTIVE_CELLS:
            continue
        d = (x - y)[active]
        best = min(best, float(np.median(np.abs(d - np.median(d)))) / replay.LEVELS_PER_LN)
    return best


def _reference_centred_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The definition of ``replay.centred_distances`` (probe ``b``, reference ``a``), plain: the
    robust spread after each band with at least MIN_BAND_CELLS active cells is centred on its
    median difference, at the lag with the closest frame profiles; or after each frame with at
    least MIN_FRAME_CELLS is, at each of the CENTRED_LAGS closest (polished when
    MIN_POLISHED_FRAMES frames have MIN_FRAME_CELLS cells in such bands: over those cells, the
    bands centred first, then the frames); the smallest."""
    found = _reference_lags(a, b)
    if found is None:
        return np.inf
    a, b, lags = found
    best = np.inf
    for by, n_lags in (("band", 1), ("frame", replay.CENTRED_LAGS)):
        for lag, j in lags[:n_lags]:
            x, y = a[j + lag], b[j]
            active = (x > replay._ACTIVE_LEVEL) | (y > replay._ACTIVE_LEVEL)
            d = (x - y).astype(np.float64)
            banded = active & (active.sum(axis=0) >= replay.MIN_BAND_CELLS)
            framed = banded.sum(axis=1) >= replay.MIN_FRAME_CELLS
            margin = 0.0
            if by == "band":
                steps, active = ("band",), banded
            elif framed.sum() >= replay.MIN_POLISHED_FRAMES:
                steps, active = ("band", "frame"), banded & framed[:, None]
                margin = replay.POLISH_MARGIN
            else:
                steps = ("frame",)
                active = active & (active.sum(axis=1) >= replay.MIN_FRAME_CELLS)[:, None]
            for step in steps:
                for cells, values in (
                    zip(active.T, d.T, strict=True)
                    if step == "band"
                    else zip(active, d, strict=True)
                ):  # a band's (a frame's) cells at a time; values is a view into d
                    if cells.any():
                        values[cells] -= np.median(values[cells])
            if active.sum() >= replay.MIN_ACTIVE_CELLS:
                c = d[active]
                spread = float(np.median(np.abs(c - np.median(c)))) / replay.LEVELS_PER_LN
                best = min(best, spread + margin)
    return best


def _definition_cases(corpus, rng: np.random.Generator, attacks) -> list[np.ndarray]:
    """Fingerprints to check a measure against its definition with: takes of two digits,
    copies of one take (``attacks``), random levels of several lengths, and an empty one."""
    takes = [
        replay.fingerprint(corpus.utterance(GENUINE, digit, i).mel_bands)
        for digit in (3, 7)
        for i in range(4)
    ]
    copies = [replay.fingerprint(_tamper(corpus.utterance(GENUINE, 3, 0), how, rng).mel_bands)
              for how in attacks]  # fmt: skip
    noise = [rng.integers(0, 256, size=(n, 40)).astype(np.uint8) for n in (1, 25, 40, 70)]
    return [*takes, *copies, *noise, np.zeros((0, 40), np.uint8)]


def test_centred_distances_equal_the_definition(corpus):
    rng = np.random.default_rng(12)
    attacks = ("noise:3", "bandgain+noise:10", "framegain+noise:10", "shift:3", "drop:20")
    fingerprints = _definition_cases(corpus, rng, attacks)
    compared = 0
    for probe in fingerprints:
        expected = [_reference_centred_distance(ref, probe) for ref in fingerprints]
        got = replay.centred_distances(probe, fingerprints)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            got, replay.centred_distances(probe, replay.prepare(fingerprints))
        )
        compared += int(np.isfinite(got).sum())
        # With a cutoff, what is below it is exact and nothing else is reported below it.
        for cutoff in (0.1, replay.CENTRED_DISTANCE, 0.5):
            cut = replay.centred_distances(probe, fingerprints, cutoff=cutoff)
            below = got < cutoff
            np.testing.assert_array_equal(cut[below], got[below])
            assert (cut[~below] >= cutoff).all()
    assert compared > 100


def test_coarse_fingerprint_is_the_pairs_of_bands_summed(corpus):
    mel = corpus.utterance(GENUINE, 5, 0).mel_bands.astype(np.float64)
    pairs = np.log1p(np.expm1(mel).reshape(len(mel), 20, 2).sum(axis=2))
    (coarse,) = replay._coarse([replay.fingerprint(mel)])
    exact = replay.fingerprint(np.repeat(pairs, 2, axis=1))[:, ::2].astype(np.int64)
    # Exact up to the fine levels' rounding, where the pair is above the floor.
    above = exact > 32  # 2 natural-log units: a band of the pair at the floor matters little
    assert np.abs(coarse - exact)[above].max() <= 2
    assert above.mean() > 0.3


@pytest.mark.parametrize("int32_keys", [False, True])
def test_batched_aligned_distances_equal_the_definition(corpus, monkeypatch, int32_keys):
    if int32_keys:  # histogram keys as int32 in every block, not only where uint16 overflows
        monkeypatch.setattr(replay, "_UINT16_KEYS", 0)
    fingerprints = _definition_cases(corpus, np.random.default_rng(11), ALIGNED_ATTACKS)
    compared = 0
    for probe in fingerprints:
        expected = [_reference_aligned_distance(ref, probe) for ref in fingerprints]
        got = replay.aligned_distances(probe, fingerprints)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            got, [replay.aligned_distance(probe, ref) for ref in fingerprints]
        )
        compared += int(np.isfinite(got).sum())
        # With a cutoff, what is below it is exact and nothing else is reported below it.
        for cutoff in (0.1, replay.ALIGNED_DISTANCE, 0.5):
            cut = replay.aligned_distances(probe, fingerprints, cutoff=cutoff)
            below = got < cutoff
            np.testing.assert_array_equal(cut[below], got[below])
            assert (cut[~below] >= cutoff).all()
    assert compared > 100  # most pairs are comparable, not just refused as inf


def test_each_probe_of_an_attempt_is_judged_against_its_own_references(corpus):
    rng = np.random.default_rng(9)
    take = {d: replay.fingerprint(corpus.utterance(GENUINE, d, 1).mel_bands) for d in (2, 8)}
    other = {d: replay.fingerprint(corpus.utterance(GENUINE, d, 2).mel_bands) for d in (2, 8)}
    copy = replay.fingerprint(_tamper(corpus.utterance(GENUINE, 8, 2), "tilt:6", rng).mel_bands)
    probes = [take[2], copy]
    references = [[other[2]], [other[8], take[8]]]
    batched = replay._change_distances(probes, references)
    for probe, refs, found in zip(probes, references, batched, strict=True):
        np.testing.assert_array_equal(found, replay.change_distances(probe, refs))
    assert replay.any_replay(probes, references)
    # The copy's original is among the other probe's references, which do not count for it.
    assert not replay.any_replay(probes, [[other[2], other[8]], [take[2]]])


def test_prepared_references_measure_what_their_fingerprints_measure(corpus):
    rng = np.random.default_rng(5)
    takes = [replay.fingerprint(corpus.utterance(GENUINE, 4, i).mel_bands) for i in range(5)]
    copies = [
        replay.fingerprint(_tamper(corpus.utterance(GENUINE, 4, 0), how, rng).mel_bands)
        for how in ("noise:3", "tilt:6", "drop:20")
    ]
    silence = np.zeros((30, 40), np.uint8)
    fingerprints = [*takes, silence, np.zeros((0, 40), np.uint8)]
    prepared = replay.prepare(fingerprints)
    assert [ref.n_frames for ref in prepared] == [len(fp) for fp in fingerprints]
    # Each owns its arrays (a cache that keeps one keeps no batch alive), read-only (shared).
    arrays = [a for ref in prepared for a in (*ref.values, *ref.masks, ref.coarse)]
    assert all(a.base is None and not a.flags.writeable for a in arrays)
    mixed = [prepared[0], *fingerprints[1:3], *prepared[3:]]  # some prepared, some not
    for probe in [*takes, *copies, silence]:
        for refs in (prepared, mixed):
            np.testing.assert_array_equal(
                replay.change_distances(probe, refs), replay.change_distances(probe, fingerprints)
            )
            np.testing.assert_array_equal(
                replay.aligned_distances(probe, refs), replay.aligned_distances(probe, fingerprints)
            )
    assert replay.any_replay(copies, [prepared] * 3)
    assert not replay.any_replay(takes[:1], [prepared[1:]])


# --------------------------------------------------------------------------------------------------
# The service refuses replays, audited and charged


@pytest.mark.parametrize("how", ATTACKS)
def test_tampered_copy_of_an_enrollment_utterance_is_rejected_as_replay(
    enrolled_alice, corpus, how
):
    rng = np.random.default_rng(11)
    utterances = corpus.answer(GENUINE, DIGITS)
    # Position 2 answers the prompted 4 with a tampered copy of enrollment recording 1 of "4".
    utterances[2] = _tamper(corpus.utterance(GENUINE, 4, 1), how, rng)
    attempt = _verify(enrolled_alice, utterances)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.REPLAY)
    assert VerificationLockout.objects.get(user=enrolled_alice).consecutive_failures == 1


@pytest.mark.parametrize(
    "how",
    [
        "exact",
        "noise",
        "noise_abs",
        "shift:3",
        "crop:5",
        "pad:1",
        "framegain:10",
        "bandgain:10",
        "tilt:6",
        "drop:20",
        "repeat:20",
        "bandgain+noise:10",
        "framegain+noise:10",
    ],
)
def test_tampered_copy_of_a_recent_attempt_is_rejected_as_replay(enrolled_alice, corpus, how):
    rng = np.random.default_rng(13)
    first = _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    assert first.reason != Reason.REPLAY
    captured = corpus.answer(GENUINE, DIGITS)
    replayed = [_tamper(u, how, rng) for u in captured]
    attempt = _verify(enrolled_alice, replayed)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.REPLAY)


@pytest.mark.parametrize("how", ["exact", "noise", "tilt:6"])
def test_a_process_that_prepared_nothing_still_finds_copies(enrolled_alice, corpus, how):
    """Another worker process (an empty reference cache) fetches and prepares what it holds."""
    rng = np.random.default_rng(17)
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    captured = corpus.answer(GENUINE, DIGITS)
    fresh = corpus.answer(GENUINE, DIGITS, index=ANSWER_INDEX + 1)
    # A copy of the recent attempt; fresh takes of 3 and 1, then a copy of enrolled "4" #1.
    enrolled = [*fresh[:2], _tamper(corpus.utterance(GENUINE, 4, 1), how, rng)]
    for replayed in ([_tamper(u, how, rng) for u in captured], enrolled):
        services._references.clear()
        attempt = _verify(enrolled_alice, replayed, digits=DIGITS[: len(replayed)])
        assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.REPLAY)


def test_with_no_reference_cache_copies_are_still_found(enrolled_alice, corpus, monkeypatch):
    monkeypatch.setattr(services, "_references", services._ReferenceCache(max_bytes=0))
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    attempt = _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.REPLAY)
    assert not services._references._items  # VERIFICATION_REPLAY_CACHE_MB=0 keeps nothing


def test_references_are_prepared_once_per_process(enrolled_alice, corpus, monkeypatch):
    services._references.clear()
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))  # prepares the stored utterances
    prepared, real = [], replay.prepare
    monkeypatch.setattr(replay, "prepare", lambda fps: prepared.append(len(fps)) or real(fps))
    attempt = _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS, index=ANSWER_INDEX + 1))
    assert attempt.reason != Reason.REPLAY
    assert prepared == [len(DIGITS)]  # the attempt's own utterances, nothing it compares with


def test_the_reference_cache_keeps_the_most_recently_used_within_its_bytes():
    rng = np.random.default_rng(3)
    refs = replay.prepare([rng.integers(0, 256, (20, 40)).astype(np.uint8) for _ in range(3)])
    cache = services._ReferenceCache(max_bytes=refs[0].nbytes + refs[1].nbytes)
    keys = [("recent", 1, pk, None) for pk in range(3)]
    cache.put_many({keys[0]: refs[0], keys[1]: refs[1]})
    assert cache.get_many([keys[0]]) == {keys[0]: refs[0]}  # now the most recently used
    cache.put_many({keys[2]: refs[2]})
    assert set(cache.get_many(keys)) <= {keys[0], keys[2]}
    assert keys[2] in cache.get_many(keys)


def test_a_rejected_attempt_is_remembered_too(enrolled_alice, corpus):
    """A captured failed attempt replayed later is still a replay (never a fresh try)."""
    first = _verify(enrolled_alice, corpus.answer(GENUINE, "12345"), digits="54321")
    assert first.decision == Decision.REJECT
    again = _verify(enrolled_alice, corpus.answer(GENUINE, "12345"), digits="12345")
    assert again.reason == Reason.REPLAY


def test_fresh_takes_after_an_accepted_attempt_are_not_replays(enrolled_alice, corpus):
    reasons = [
        _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS, index=ANSWER_INDEX + k)).reason
        for k in range(3)
    ]
    assert Reason.REPLAY not in reasons
    assert ReplayFingerprint.objects.filter(user=enrolled_alice).count() == 3 * len(DIGITS)


def test_replay_over_the_api_answers_reject_replay(alice_api, enrolled_alice, corpus):
    nonce = alice_api.post(reverse("challenge-list")).json()["id"]
    prompt(nonce, DIGITS)
    enrolled = [corpus.utterance(GENUINE, int(d), 0, label=False) for d in DIGITS]
    body = {"challenge": nonce, "utterances": [payload(u) for u in enrolled]}
    response = alice_api.post(reverse("voiceprint-score"), body, format="json")
    assert response.status_code == 200
    assert response.json()["decision"] == "reject"
    assert response.json()["reason"] == "replay"
    row = VerificationAttempt.objects.get(pk=response.json()["attempt"])
    assert row.reason == Reason.REPLAY
    assert row.score is None  # never scored
    assert Challenge.objects.get(nonce=nonce).used_at is not None


def test_fingerprints_are_compact(enrolled_alice, corpus):
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    rows = list(ReplayFingerprint.objects.filter(user=enrolled_alice))
    assert sorted(r.digit for r in rows) == sorted(int(d) for d in DIGITS)
    for row, digit in zip(sorted(rows, key=lambda r: r.pk), DIGITS, strict=True):
        utt = corpus.utterance(GENUINE, int(digit), ANSWER_INDEX)
        # 40 one-byte levels per frame: under a quarter of the 41 float32 values stored per frame.
        assert len(bytes(row.fingerprint)) == utt.n_frames * replay.FINGERPRINT_BANDS
        assert len(bytes(row.fingerprint)) * 4 < len(EnrollmentUtterance.pack(utt))


def test_only_the_newest_fingerprints_are_kept(enrolled_alice, corpus, monkeypatch):
    monkeypatch.setattr(services, "REPLAY_RECENT_FINGERPRINTS", 7)
    for k in range(3):
        _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS, index=ANSWER_INDEX + k))
    kept = ReplayFingerprint.objects.filter(user=enrolled_alice)
    assert kept.count() == 7
    newest_attempt_digits = sorted(int(d) for d in DIGITS)
    newest = sorted(kept.order_by("-id").values_list("digit", flat=True)[:5])
    assert newest == newest_attempt_digits
    # Exactly the 7 newest of the 15 stored (one sequence): 2 of the second attempt stay.
    ids = sorted(kept.values_list("id", flat=True))
    assert ids == list(range(ids[-1] - 6, ids[-1] + 1))


def test_deleting_the_voiceprint_drops_what_this_process_prepared_from_it(
    enrolled_alice, bob, corpus
):
    other = services._ReferenceCache(max_bytes=1 << 20)
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    users = {key[1] for key in services._references._items}
    assert enrolled_alice.pk in users
    services.voiceprint_delete(user=enrolled_alice)
    assert enrolled_alice.pk not in {key[1] for key in services._references._items}
    other.put_many({("recent", bob.pk, 1, None): replay.prepare([np.ones((5, 40), np.uint8)])[0]})
    other.drop_user(enrolled_alice.pk)  # another user's entries stay
    assert other.get_many([("recent", bob.pk, 1, None)])


def test_fingerprints_are_deleted_with_the_voiceprint(enrolled_alice, corpus):
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    assert ReplayFingerprint.objects.filter(user=enrolled_alice).exists()
    services.voiceprint_delete(user=enrolled_alice)
    assert not ReplayFingerprint.objects.filter(user=enrolled_alice).exists()


def test_another_users_fingerprints_are_not_references(enrolled_alice, bob, corpus):
    """bob's copy of alice's attempt is checked against bob's data only (and fails as bob)."""
    from verification.tests.conftest import enroll

    enroll(bob, corpus, speaker="jackson")
    _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS))
    attempt = _verify(bob, corpus.answer(GENUINE, DIGITS))
    assert attempt.reason != Reason.REPLAY


def test_one_recording_answering_two_prompts_is_rejected_as_replay(enrolled_alice, corpus):
    """The same take sent for two prompted digits: a copy inside the attempt itself."""
    take = corpus.utterance(GENUINE, 3, ANSWER_INDEX, label=False)
    fresh = corpus.answer(GENUINE, "145")
    attempt = _verify(enrolled_alice, [take, *fresh, take], digits="31453")
    assert attempt.reason == Reason.REPLAY


def test_the_upgrade_drops_fingerprints_of_the_20_band_format(enrolled_alice, corpus):
    """Migration 0006: rows of the earlier format would be misread as 40-band fingerprints (or
    refused, failing the verification), so they are dropped; the enrollment references stay."""
    from django.apps import apps

    migration = importlib.import_module("verification.migrations.0006_replay_fingerprints_40_bands")
    ReplayFingerprint.objects.create(user=enrolled_alice, digit=3, fingerprint=bytes(20 * 31))
    migration.drop_20_band_fingerprints(apps, None)
    assert not ReplayFingerprint.objects.exists()
    assert EnrollmentUtterance.objects.filter(user=enrolled_alice).exists()
    assert _verify(enrolled_alice, corpus.answer(GENUINE, DIGITS)).reason != Reason.REPLAY
