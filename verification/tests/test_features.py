"""Unit tests of verification.features on tiny generated signals and WAVs (no corpus needed)."""

import base64
import io
import json
import math
import wave

import numpy as np
import pytest
import scipy.signal
from django.core.management import CommandError, call_command

from verification import features as F
from verification.features import (
    CONTRACT,
    FEATURE_VERSION,
    CepstraConfig,
    FeatureError,
    Utterance,
    cepstra,
    frame_count,
    mel_filter_bank,
    meyda_features,
    parse_utterance,
    read_wav,
    resample_to_16k,
    utterance_payload,
    wav_to_utterance,
)


def write_wav(path, frames: bytes, *, rate=16000, width=2, channels=1):
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def speech_like(seconds=1.0, rate=16000, seed=0):
    """Voiced bursts between quiet gaps: (n_samples,) float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 900 * t + 1.0)
    envelope = (np.sin(2 * np.pi * 2.5 * t) > 0).astype(float)
    signal = 0.3 * voiced * envelope + 1e-3 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


@pytest.fixture(scope="module")
def utterance():
    mel, rms = meyda_features(speech_like(1.5))
    return Utterance(mel_bands=mel, rms=rms, digit=7)


@pytest.fixture
def payload(utterance):
    return json.loads(json.dumps(utterance_payload(utterance)))


# --- contract and framing --------------------------------------------------------------------


def test_contract_declares_the_browser_settings():
    assert CONTRACT == {
        "feature_version": FEATURE_VERSION,
        "sample_rate": 16000,
        "frame_length": 512,
        "hop_length": 160,
        "window": "hamming",
        "mel_bands": 40,
    }


@pytest.mark.parametrize(
    ("n_samples", "n_frames"), [(0, 0), (511, 0), (512, 1), (671, 1), (672, 2), (16000, 97)]
)
def test_frame_count_keeps_only_full_frames(n_samples, n_frames):
    assert frame_count(n_samples) == n_frames
    mel, rms = meyda_features(np.zeros(n_samples, dtype=np.float32))
    assert mel.shape == (n_frames, 40)
    assert rms.shape == (n_frames,)


def test_frame_i_is_the_slice_at_i_times_hop():
    signal = speech_like(0.5)
    mel, rms = meyda_features(signal)
    one_mel, one_rms = meyda_features(signal[3 * 160 : 3 * 160 + 512])
    np.testing.assert_array_equal(mel[3], one_mel[0])
    np.testing.assert_array_equal(rms[3], one_rms[0])


def test_features_are_float32():
    mel, rms = meyda_features(speech_like(0.2))
    assert mel.dtype == np.float32
    assert rms.dtype == np.float32


def test_digital_silence_gives_zero_features():
    mel, rms = meyda_features(np.zeros(2000, dtype=np.float32))
    assert not mel.any()
    assert not rms.any()


def test_rms_is_taken_on_the_hamming_windowed_frame():
    # Meyda computes rms after windowing: a constant c gives c * sqrt(mean(w**2)).
    window = scipy.signal.get_window("hamming", 512, fftbins=True)
    _, rms = meyda_features(np.full(512, 0.5, dtype=np.float32))
    assert rms[0] == pytest.approx(0.5 * math.sqrt(np.mean(window**2)), rel=1e-6)


def test_mel_bands_match_a_float64_reference_implementation():
    # Independent oracle: periodic Hamming, |rfft|^2 over bins 0..255, Meyda's bank, ln(E + 1).
    signal = speech_like(0.3, seed=4)
    frames = np.stack([signal[i * 160 : i * 160 + 512] for i in range(frame_count(signal.size))])
    window = scipy.signal.get_window("hamming", 512, fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=1)[:, :256]) ** 2
    expected = np.log(power @ mel_filter_bank()[:, :256].T + 1)
    mel, _ = meyda_features(signal)
    np.testing.assert_allclose(mel, expected, rtol=1e-5, atol=1e-6)


def test_mel_filter_bank_is_htk_triangles_covering_each_bin_at_most_once():
    bank = mel_filter_bank()
    assert bank.shape == (40, 257)
    assert bank.max() == 1.0
    assert (bank.sum(axis=0) <= 1.0 + 1e-12).all()
    assert (bank.max(axis=1) > 0).all()


# --- audio ------------------------------------------------------------------------------------


def test_resample_is_identity_at_16k():
    signal = speech_like(0.1)
    np.testing.assert_array_equal(resample_to_16k(signal, 16000), signal)


@pytest.mark.parametrize(("rate", "n_in", "n_out"), [(8000, 800, 1600), (44100, 4410, 1600)])
def test_resample_changes_length_by_rate_ratio(rate, n_in, n_out):
    out = resample_to_16k(np.zeros(n_in, dtype=np.float32), rate)
    assert out.shape == (n_out,)
    assert out.dtype == np.float32


def test_resample_preserves_a_tone_frequency():
    t = np.arange(8000) / 8000
    out = resample_to_16k(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 8000)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * 16000 / out.size == pytest.approx(1000, abs=2)


def test_read_wav_scales_16_bit_by_32768(tmp_path):
    ints = np.array([0, 16384, -32768, 32767], dtype="<i2")
    signal, rate = read_wav(write_wav(tmp_path / "a.wav", ints.tobytes(), rate=8000))
    assert rate == 8000
    assert signal.dtype == np.float32
    np.testing.assert_array_equal(signal, [0.0, 0.5, -1.0, 32767 / 32768])


def test_read_wav_decodes_unsigned_8_bit(tmp_path):
    path = write_wav(tmp_path / "a.wav", bytes([0, 128, 255, 64]), width=1)
    signal, _ = read_wav(path)
    np.testing.assert_array_equal(signal, [-1.0, 0.0, 127 / 128, -0.5])


def test_read_wav_sign_extends_24_bit(tmp_path):
    values = [0, 1 << 22, -(1 << 23), -1]
    raw = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    signal, _ = read_wav(write_wav(tmp_path / "a.wav", raw, width=3))
    np.testing.assert_array_equal(signal, np.float32([0.0, 0.5, -1.0, -1 / 8388608]))


def test_read_wav_scales_32_bit_by_2_to_31(tmp_path):
    ints = np.array([0, 1 << 30, -(1 << 31)], dtype="<i4")
    signal, _ = read_wav(write_wav(tmp_path / "a.wav", ints.tobytes(), width=4))
    np.testing.assert_array_equal(signal, [0.0, 0.5, -1.0])


def test_read_wav_mixes_stereo_down_to_the_mean(tmp_path):
    interleaved = np.array([16384, 0, -16384, -16384, 32767, -32767], dtype="<i2")
    signal, _ = read_wav(write_wav(tmp_path / "a.wav", interleaved.tobytes(), channels=2))
    np.testing.assert_allclose(signal, [0.25, -0.5, 0.0])


def test_read_wav_mixes_more_channels_to_the_mean(tmp_path):
    interleaved = np.array([16384, 16384, -32768, 0, 0, 0], dtype="<i2")
    signal, _ = read_wav(write_wav(tmp_path / "a.wav", interleaved.tobytes(), channels=3))
    np.testing.assert_allclose(signal, [0.0, 0.0])


def test_read_wav_rejects_a_file_that_is_not_wav(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"ID3 not a wave file at all")
    with pytest.raises(FeatureError) as info:
        read_wav(path)
    assert info.value.field == "wav"


def test_wav_to_utterance_decodes_resamples_and_extracts(tmp_path):
    ints = (speech_like(1.0, rate=8000) * 32767).astype("<i2")
    utt = wav_to_utterance(write_wav(tmp_path / "a.wav", ints.tobytes(), rate=8000), digit=4)
    assert utt.digit == 4
    assert utt.mel_bands.shape == (frame_count(16000), 40)
    assert utt.rms.shape == (frame_count(16000),)


# --- Utterance ----------------------------------------------------------------------------


def test_utterance_coerces_arrays_to_float32():
    utt = Utterance(mel_bands=np.ones((12, 40)), rms=np.ones(12), digit=None)
    assert utt.mel_bands.dtype == np.float32
    assert utt.rms.dtype == np.float32
    assert utt.n_frames == 12


@pytest.mark.parametrize(("mel_shape", "rms_shape"), [((12, 39), (12,)), ((12, 40), (11,))])
def test_utterance_rejects_inconsistent_shapes(mel_shape, rms_shape):
    with pytest.raises(ValueError, match="shape"):
        Utterance(mel_bands=np.ones(mel_shape), rms=np.ones(rms_shape))


# --- parse_utterance: accepted ------------------------------------------------------------


def test_payload_round_trips_exactly_through_json(utterance, payload):
    parsed = parse_utterance(payload)
    np.testing.assert_array_equal(parsed.mel_bands, utterance.mel_bands)
    np.testing.assert_array_equal(parsed.rms, utterance.rms)
    assert parsed.digit == 7


def test_payload_declares_the_contract(payload):
    assert {k: payload[k] for k in F._CONTRACT_KEYS} == {k: CONTRACT[k] for k in F._CONTRACT_KEYS}


def test_float32_compact_payload_round_trips_exactly(utterance):
    compact = json.loads(json.dumps(utterance_payload(utterance, encoding="float32")))
    assert "mel_bands" not in compact
    parsed = parse_utterance(compact)
    np.testing.assert_array_equal(parsed.mel_bands, utterance.mel_bands)
    np.testing.assert_array_equal(parsed.rms, utterance.rms)


def test_float16_compact_payload_round_trips_to_half_precision(utterance):
    parsed = parse_utterance(utterance_payload(utterance, encoding="float16"))
    np.testing.assert_allclose(parsed.mel_bands, utterance.mel_bands, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(parsed.rms, utterance.rms, rtol=1e-3, atol=1e-7)


def test_float16_compact_payload_is_small(utterance):
    body = json.dumps(utterance_payload(utterance, encoding="float16"))
    seconds = utterance.n_frames * 160 / 16000
    assert len(body) / seconds < 12_000


def test_integers_are_accepted_as_numbers(payload):
    payload["mel_bands"][0] = [1] * 40
    assert parse_utterance(payload).mel_bands[0, 0] == 1.0


def test_digit_is_optional_when_not_required(payload):
    del payload["digit"]
    assert parse_utterance(payload, require_digit=False).digit is None


def test_null_digit_is_accepted_when_not_required(payload):
    payload["digit"] = None
    assert parse_utterance(payload, require_digit=False).digit is None


def test_error_names_the_field_under_the_given_prefix(payload):
    payload["rms"][3] = "0.1"
    with pytest.raises(FeatureError) as info:
        parse_utterance(payload, field="utterances[2]")
    assert info.value.field == "utterances[2].rms[3]"
    assert str(info.value).startswith("utterances[2].rms[3]: expected a number")


# --- parse_utterance: rejected ------------------------------------------------------------


def _set(key, value):
    def mutate(p):
        p[key] = value

    return mutate


def _drop(key):
    def mutate(p):
        del p[key]

    return mutate


def _mel(i, j, value):
    def mutate(p):
        p["mel_bands"][i][j] = value

    return mutate


def _rms(i, value):
    def mutate(p):
        p["rms"][i] = value

    return mutate


def _frames(n):
    def mutate(p):
        rows = (p["mel_bands"] * (n // len(p["mel_bands"]) + 1))[:n]
        p["mel_bands"] = rows
        p["rms"] = (p["rms"] * (n // len(p["rms"]) + 1))[:n]

    return mutate


HOSTILE = {
    "missing version": (_drop("feature_version"), "utterance.feature_version"),
    "other version": (_set("feature_version", "meyda-5.6.3/mfcc13"), "utterance.feature_version"),
    "rate 44100": (_set("sample_rate", 44100), "utterance.sample_rate"),
    "rate as string": (_set("sample_rate", "16000"), "utterance.sample_rate"),
    "rate as float": (_set("sample_rate", 16000.0), "utterance.sample_rate"),
    "frame length": (_set("frame_length", 1024), "utterance.frame_length"),
    "hop length": (_set("hop_length", 128), "utterance.hop_length"),
    "hann window": (_set("window", "hanning"), "utterance.window"),
    "unknown field": (_set("mfcc", []), "utterance.mfcc"),
    "mel not a list": (_set("mel_bands", {"0": [0.0] * 40}), "utterance.mel_bands"),
    "mel null": (_set("mel_bands", None), "utterance.mel_bands"),
    "row is a string": (
        lambda p: p["mel_bands"].__setitem__(2, "0.1," * 40),
        "utterance.mel_bands[2]",
    ),
    "ragged row": (lambda p: p["mel_bands"][5].pop(), "utterance.mel_bands[5]"),
    "wide row": (lambda p: p["mel_bands"][5].append(0.1), "utterance.mel_bands[5]"),
    "bool in mel": (_mel(1, 2, True), "utterance.mel_bands[1][2]"),
    "string number in mel": (_mel(1, 2, "1.5"), "utterance.mel_bands[1][2]"),
    "string NaN in mel": (_mel(1, 2, "NaN"), "utterance.mel_bands[1][2]"),
    "null in mel": (_mel(1, 2, None), "utterance.mel_bands[1][2]"),
    "dict in mel": (_mel(1, 2, {}), "utterance.mel_bands[1][2]"),
    "NaN in mel": (_mel(1, 2, float("nan")), "utterance.mel_bands[1][2]"),
    "inf in mel": (_mel(1, 2, float("inf")), "utterance.mel_bands[1][2]"),
    "huge int in mel": (_mel(1, 2, 10**400), "utterance.mel_bands"),
    "negative mel": (_mel(1, 2, -0.5), "utterance.mel_bands[1][2]"),
    "mel too large": (_mel(1, 2, 25.0), "utterance.mel_bands[1][2]"),
    "too few frames": (_frames(F.MIN_FRAMES - 1), "utterance.mel_bands"),
    "no frames": (_frames(0), "utterance.mel_bands"),
    "too many frames": (_frames(F.MAX_FRAMES + 1), "utterance.mel_bands"),
    "rms not a list": (_set("rms", 0.1), "utterance.rms"),
    "rms short": (lambda p: p["rms"].pop(), "utterance.rms"),
    "bool in rms": (_rms(4, False), "utterance.rms[4]"),
    "string in rms": (_rms(4, "0.1"), "utterance.rms[4]"),
    "null in rms": (_rms(4, None), "utterance.rms[4]"),
    "NaN in rms": (_rms(4, float("nan")), "utterance.rms[4]"),
    "inf in rms": (_rms(4, float("-inf")), "utterance.rms[4]"),
    "negative rms": (_rms(4, -0.01), "utterance.rms[4]"),
    "rms too large": (_rms(4, 2.0), "utterance.rms[4]"),
    "missing digit": (_drop("digit"), "utterance.digit"),
    "null digit": (_set("digit", None), "utterance.digit"),
    "digit 10": (_set("digit", 10), "utterance.digit"),
    "digit -1": (_set("digit", -1), "utterance.digit"),
    "digit bool": (_set("digit", True), "utterance.digit"),
    "digit string": (_set("digit", "3"), "utterance.digit"),
    "digit float": (_set("digit", 3.0), "utterance.digit"),
}


@pytest.mark.parametrize(("mutate", "field"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_payload_is_rejected_naming_the_field(payload, mutate, field):
    mutate(payload)
    with pytest.raises(FeatureError) as info:
        parse_utterance(payload)
    assert info.value.field == field


def test_json_overflow_to_infinity_is_rejected(payload):
    text = json.dumps(payload).replace(str(payload["mel_bands"][0][0]), "1e999", 1)
    with pytest.raises(FeatureError, match="finite"):
        parse_utterance(json.loads(text))


def test_non_object_payload_is_rejected():
    with pytest.raises(FeatureError) as info:
        parse_utterance([1, 2, 3], field="utterances[0]")
    assert info.value.field == "utterances[0]"


def test_contract_error_says_the_expected_value(payload):
    payload["sample_rate"] = 44100
    with pytest.raises(FeatureError, match="expected 16000, got 44100"):
        parse_utterance(payload)


def test_all_zero_features_are_rejected_as_no_signal(payload):
    n = len(payload["rms"])
    payload["mel_bands"] = [[0.0] * 40 for _ in range(n)]
    payload["rms"] = [0.0] * n
    with pytest.raises(FeatureError, match="no signal"):
        parse_utterance(payload)


def test_constant_features_are_rejected_as_no_signal(payload):
    n = len(payload["rms"])
    payload["mel_bands"] = [[1.0] * 40 for _ in range(n)]
    with pytest.raises(FeatureError, match="no signal"):
        parse_utterance(payload)


def test_band_energies_inconsistent_with_rms_are_rejected(payload):
    # Loud bands with a tenth of the rms cannot come from one frame (Parseval).
    payload["rms"] = [r / 10 for r in payload["rms"]]
    with pytest.raises(FeatureError, match="rms") as info:
        parse_utterance(payload)
    assert info.value.field.startswith("utterance.mel_bands[")


# --- parse_utterance: compact encoding rejected ------------------------------------------


@pytest.fixture
def compact(utterance):
    return utterance_payload(utterance, encoding="float16")


def test_b64_without_encoding_is_rejected(compact):
    del compact["encoding"]
    with pytest.raises(FeatureError) as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.encoding"


def test_unknown_encoding_is_rejected(compact):
    compact["encoding"] = "float64"
    with pytest.raises(FeatureError) as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.encoding"


def test_both_list_and_b64_are_rejected(compact, payload):
    compact["mel_bands"] = payload["mel_bands"]
    with pytest.raises(FeatureError, match="exactly one") as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.mel_bands"


def test_missing_mel_bands_is_rejected(payload):
    del payload["mel_bands"]
    with pytest.raises(FeatureError, match="exactly one"):
        parse_utterance(payload)


@pytest.mark.parametrize("value", ["not base64!", 123, None])
def test_malformed_b64_is_rejected(compact, value):
    compact["mel_bands_b64"] = value
    with pytest.raises(FeatureError) as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.mel_bands_b64"


def test_b64_with_partial_frame_is_rejected(compact):
    raw = base64.b64decode(compact["mel_bands_b64"])
    compact["mel_bands_b64"] = base64.b64encode(raw[:-2]).decode()
    with pytest.raises(FeatureError, match="whole number of frames"):
        parse_utterance(compact)


def test_b64_infinity_is_rejected(compact):
    raw = bytearray(base64.b64decode(compact["rms_b64"]))
    raw[0:2] = np.float16(np.inf).tobytes()
    compact["rms_b64"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(FeatureError, match="finite") as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.rms_b64[0]"


def test_b64_frame_count_mismatch_is_rejected(compact):
    raw = base64.b64decode(compact["rms_b64"])
    compact["rms_b64"] = base64.b64encode(raw[:-2]).decode()
    with pytest.raises(FeatureError, match="one per frame") as info:
        parse_utterance(compact)
    assert info.value.field == "utterance.rms_b64"


# --- cepstra ------------------------------------------------------------------------------


def test_cepstra_shape_dtype_and_finiteness(utterance):
    feats = cepstra(utterance)
    assert feats.dtype == np.float32
    assert feats.shape[1] == F.DEFAULT_CONFIG.n_dims == 60
    assert 0 < feats.shape[0] <= utterance.n_frames
    assert np.isfinite(feats).all()


def test_cepstra_are_invariant_to_gain():
    signal = speech_like(1.0, seed=2)
    loud = cepstra(Utterance(*meyda_features(signal)))
    quiet = cepstra(Utterance(*meyda_features(signal * np.float32(0.1))))
    np.testing.assert_allclose(quiet, loud, atol=2e-3)


def test_cepstra_vad_drops_silent_frames():
    signal = speech_like(1.0, seed=1)
    signal[:8000] = 0.0
    utt = Utterance(*meyda_features(signal))
    kept = F.voiced_frames(utt)
    assert not kept[:40].any()
    assert cepstra(utt).shape[0] == kept.sum()


def test_cepstra_vad_keeps_at_least_min_frames():
    signal = np.zeros(16000, dtype=np.float32)
    signal[4000:4700] = speech_like(0.05)[:700]
    utt = Utterance(*meyda_features(signal))
    config = CepstraConfig(vad_db=3.0, min_frames=15)
    assert cepstra(utt, config).shape[0] == 15


def test_cepstra_without_vad_keeps_every_frame(utterance):
    feats = cepstra(utterance, CepstraConfig(vad_db=None))
    assert feats.shape[0] == utterance.n_frames


def test_cepstra_cmn_centres_the_static_coefficients(utterance):
    feats = cepstra(utterance, CepstraConfig(deltas=0))
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-5)


@pytest.mark.parametrize(("deltas", "n_dims"), [(0, 13), (1, 26), (2, 39)])
def test_cepstra_dims_follow_config(utterance, deltas, n_dims):
    config = CepstraConfig(n_ceps=13, deltas=deltas)
    assert config.n_dims == n_dims
    assert cepstra(utterance, config).shape[1] == n_dims


def test_cepstra_band_limits_use_only_the_chosen_bands(utterance):
    config = CepstraConfig(band_hi=30, n_ceps=20)
    changed = Utterance(utterance.mel_bands.copy(), utterance.rms)
    changed.mel_bands[:, 30:] = 0.0
    np.testing.assert_array_equal(cepstra(changed, config), cepstra(utterance, config))


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.arange(20, dtype=np.float64)[:, None] * 0.5
    np.testing.assert_allclose(F._deltas(ramp, 2)[2:-2], 0.5)


@pytest.mark.parametrize(
    "kwargs", [{"band_lo": 30, "band_hi": 20}, {"n_ceps": 40}, {"deltas": 3}, {"min_frames": 0}]
)
def test_cepstra_config_rejects_impossible_settings(kwargs):
    with pytest.raises(ValueError, match="must|need"):
        CepstraConfig(**kwargs)


def test_cepstra_of_empty_utterance_is_empty():
    utt = Utterance(np.zeros((0, 40)), np.zeros(0))
    assert cepstra(utt).shape == (0, F.DEFAULT_CONFIG.n_dims)


@pytest.mark.parametrize(
    "config",
    [
        F.DEFAULT_CONFIG,
        CepstraConfig(deltas=0),
        CepstraConfig(deltas=1, band_lo=2, band_hi=30, floor_db=50.0),
        CepstraConfig(vad_db=None, cvn=True),
        CepstraConfig(vad_db=3.0, min_frames=15, cmn=False),
    ],
)
def test_cepstra_many_equals_cepstra_of_each_utterance(config):
    """The batched path is the per-utterance one, for utterances of every kind (short ones
    below min_frames, a burst in silence so the VAD falls back to its loudest frames, different
    gains), whatever the batch around them. Equal up to the DCT product's rounding: BLAS may
    round a row differently by its place in the matrix (seen: 1e-16 for constant frames)."""
    signals = [speech_like(s, seed=i) for i, s in enumerate((0.6, 1.0, 0.3, 0.8))]
    signals[1][:9000] = 0.0  # mostly silent: few frames pass a tight VAD
    signals[3] = signals[3] * np.float32(0.05)
    utts = [Utterance(*meyda_features(x)) for x in signals]
    short = Utterance(utts[0].mel_bands[:6], utts[0].rms[:6])  # fewer frames than min_frames
    burst = np.zeros(16000, dtype=np.float32)
    burst[4000:4300] = speech_like(0.05)[:300]  # a few loud frames: the VAD keeps min_frames
    batch = [utts[0], short, *utts[1:], Utterance(*meyda_features(burst))]
    for group in (batch, batch[::-1], batch[2:3]):
        got = F.cepstra_many(group, config)
        assert len(got) == len(group)
        for feats, utt in zip(got, group, strict=True):
            np.testing.assert_allclose(feats, cepstra(utt, config), rtol=1e-6, atol=1e-9)
            assert feats.dtype == np.float32


def test_cepstra_many_handles_empty_input_and_empty_utterances(utterance):
    empty = Utterance(np.zeros((0, 40)), np.zeros(0))
    assert F.cepstra_many([]) == []
    got = F.cepstra_many([utterance, empty])
    np.testing.assert_allclose(got[0], cepstra(utterance), rtol=1e-6, atol=1e-9)
    assert got[1].shape == (0, F.DEFAULT_CONFIG.n_dims)


def test_segment_deltas_repeat_each_segments_own_edges():
    x = np.arange(10, dtype=np.float64)[:, None] ** 2
    first = np.repeat([0, 4], [4, 6])
    last = np.repeat([3, 9], [4, 6])
    got = F._segment_deltas(x, first, last, 2)
    np.testing.assert_array_equal(got[:4], F._deltas(x[:4], 2))
    np.testing.assert_array_equal(got[4:], F._deltas(x[4:], 2))


# --- extract_features command ---------------------------------------------------------------


@pytest.fixture
def wav_file(tmp_path):
    ints = (speech_like(1.0, rate=8000) * 32767).astype("<i2")
    return write_wav(tmp_path / "three.wav", ints.tobytes(), rate=8000)


def run_command(*args):
    out = io.StringIO()
    call_command("extract_features", *map(str, args), stdout=out)
    return json.loads(out.getvalue())


def test_extract_features_prints_a_valid_payload(wav_file):
    body = run_command(wav_file, "--digit", 3)
    utt = parse_utterance(body)
    assert utt.digit == 3
    np.testing.assert_array_equal(utt.mel_bands, wav_to_utterance(wav_file).mel_bands)


def test_extract_features_without_digit_omits_it(wav_file):
    body = run_command(wav_file)
    assert "digit" not in body
    assert parse_utterance(body, require_digit=False).digit is None


def test_extract_features_compact_uses_float16_base64(wav_file):
    body = run_command(wav_file, "--digit", 0, "--compact")
    assert body["encoding"] == "float16"
    assert "mel_bands_b64" in body
    assert parse_utterance(body).n_frames == frame_count(16000)


def test_extract_features_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("extract_features", str(tmp_path / "missing.wav"))


def test_extract_features_reports_an_unreadable_file(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"garbage")
    with pytest.raises(CommandError, match="not a readable PCM WAV"):
        call_command("extract_features", str(path))


@pytest.mark.parametrize("start", [0, 1])
def test_cepstra_dct_matrix_equals_scipy_orthonormal_dct(start):
    import scipy.fft

    logs = np.random.default_rng(11).normal(size=(7, 30))
    expected = scipy.fft.dct(logs, type=2, norm="ortho", axis=1)[:, start : start + 12]
    np.testing.assert_allclose(logs @ F._dct_rows(30, start, 12), expected, atol=1e-12)
