"""The browser feature contract, ported to numpy.

This module owns everything between audio and the engine:

* ``read_wav`` / ``resample_to_16k``: decode PCM WAV files the way Web Audio would (float32 mono).
* ``meyda_features``: a bit-for-bit port of what Meyda 5.6.3 computes for ``melBands`` and ``rms``
  (``Meyda.bufferSize = 512``, ``sampleRate = 16000``, ``melBands = 40``,
  ``windowingFunction = 'hamming'``) over our own framing (512 samples, hop 160, full frames only).
  ``verification/tests/test_parity.py`` runs real Meyda in Node and compares.
* ``parse_utterance`` / ``utterance_payload``: the JSON body a client sends, validated strictly and
  without per-float Python work.
* ``cepstra``: server-side post-processing (gain-invariant log energies, DCT, VAD, CMN, deltas),
  configured by a frozen :class:`CepstraConfig` so the engine can tune it by measurement.

No Django, no I/O except ``read_wav``, no mutable globals.
"""

from __future__ import annotations

import base64
import binascii
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

FEATURE_VERSION = "meyda-5.6.3/melbands40-hamming-16k-v1"
SAMPLE_RATE = 16000
FRAME_LENGTH = 512
HOP_LENGTH = 160
N_MEL_BANDS = 40
WINDOW = "hamming"

CONTRACT: dict[str, Any] = {
    "feature_version": FEATURE_VERSION,
    "sample_rate": SAMPLE_RATE,
    "frame_length": FRAME_LENGTH,
    "hop_length": HOP_LENGTH,
    "window": WINDOW,
    "mel_bands": N_MEL_BANDS,
}

# Payload bounds. 10 frames = 0.12 s of audio: the shortest tightly trimmed digit in FSDD has 12,
# and a shorter utterance carries no speaker information. 1500 frames = 15 s: one prompted digit
# never takes that long, and it bounds the work per request.
MIN_FRAMES = 10
MAX_FRAMES = 1500
# Samples in [-1, 1] bound rms (windowed, as Meyda computes it) by sqrt(mean(w**2)) ~ 0.63 and each
# band by ln(512**2 * 0.40 + 1) ~ 11.6 (Parseval). The limits leave room for a hot signal (~2.4x
# full scale) and reject anything no microphone can produce.
RMS_MAX = 1.5
MEL_BAND_MAX = 20.0
# Parseval: the 40 band energies of a frame sum to at most 512**2 * rms**2 (the filters sum to <= 1
# on every bin). Slack covers float16 payloads; a frame breaking it is not from one signal.
_ENERGY_SLACK = 1.1
_ENERGY_SLACK_ABS = 1e-3

_CONTRACT_KEYS = ("feature_version", "sample_rate", "frame_length", "hop_length", "window")
_ARRAY_KEYS = ("mel_bands", "rms")
_ENCODINGS = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
_ALLOWED_KEYS = frozenset(
    (*_CONTRACT_KEYS, *_ARRAY_KEYS, *(f"{k}_b64" for k in _ARRAY_KEYS), "encoding", "digit")
)
_NUMBER_TYPES = frozenset((float, int))


class FeatureError(ValueError):
    """Invalid audio or feature payload.

    ``field`` names the offending input (e.g. ``utterances[2].rms``); ``message`` says what was
    expected.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, eq=False)
class Utterance:
    """One utterance's browser features.

    mel_bands: (n_frames, 40) float32, Meyda's ``melBands`` = ln(E + 1) per frame.
    rms: (n_frames,) float32, Meyda's ``rms`` of the windowed frame.
    digit: the prompted digit, or None when unknown.
    """

    mel_bands: np.ndarray
    rms: np.ndarray
    digit: int | None = None

    def __post_init__(self) -> None:
        mel = np.ascontiguousarray(self.mel_bands, dtype=np.float32)
        rms = np.ascontiguousarray(self.rms, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[1] != N_MEL_BANDS:
            raise ValueError(
                f"mel_bands must have shape (n_frames, {N_MEL_BANDS}), got {mel.shape}"
            )
        if rms.shape != (mel.shape[0],):
            raise ValueError(f"rms must have shape ({mel.shape[0]},), got {rms.shape}")
        object.__setattr__(self, "mel_bands", mel)
        object.__setattr__(self, "rms", rms)

    @property
    def n_frames(self) -> int:
        return int(self.mel_bands.shape[0])


# --------------------------------------------------------------------------------------------------
# Audio


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a PCM WAV file to (signal float32 mono in [-1, 1], sample_rate).

    8-bit (unsigned), 16-, 24- and 32-bit (signed) PCM, any number of channels. Samples are scaled
    as Web Audio's decoder does (divided by 2**(bits-1)); channels are averaged, which for stereo is
    the Web Audio down-mix 0.5 * (L + R).
    """
    try:
        with wave.open(str(path), "rb") as wav:
            n_channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise FeatureError("wav", f"not a readable PCM WAV file ({exc})") from exc
    if rate <= 0:
        raise FeatureError("wav", f"invalid sample rate {rate}")
    n = len(raw) // (width * n_channels)
    raw = raw[: n * width * n_channels]
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        samples = (ints.astype(np.float64) / 8388608.0).astype(np.float32)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(
            np.float32
        )
    else:
        raise FeatureError("wav", f"unsupported sample width {width} bytes (expected 1 to 4)")
    samples = samples.reshape(-1, n_channels)
    if n_channels == 1:
        return np.ascontiguousarray(samples[:, 0]), rate
    if n_channels == 2:
        return (samples[:, 0] + samples[:, 1]) * np.float32(0.5), rate
    return samples.mean(axis=1, dtype=np.float32), rate


def resample_to_16k(signal: np.ndarray, rate: int) -> np.ndarray:
    """Resample a mono signal (n_samples,) from ``rate`` Hz to 16 kHz float32 (polyphase filter)."""
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D, got shape {signal.shape}")
    rate = int(rate)
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if rate == SAMPLE_RATE:
        return signal
    # Imported here: scipy.signal pulls in scipy.stats, ~100 MB of RSS and a second of start-up
    # in every web worker, which never resamples (browsers send 16 kHz features).
    import scipy.signal

    g = math.gcd(SAMPLE_RATE, rate)
    out = scipy.signal.resample_poly(signal, SAMPLE_RATE // g, rate // g)
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Meyda 5.6.3 port


@lru_cache(maxsize=1)
def _hamming_window() -> np.ndarray:
    """Meyda's ``hamming`` (periodic), stored as Float32Array; returned as exact float64 values."""
    i = np.arange(FRAME_LENGTH, dtype=np.float64)
    w = 0.54 - 0.46 * np.cos(2 * math.pi * (i / FRAME_LENGTH - 1))
    w = w.astype(np.float32).astype(np.float64)
    w.flags.writeable = False
    return w


@lru_cache(maxsize=1)
def mel_filter_bank() -> np.ndarray:
    """Meyda's ``createMelFilterBank(40, 16000, 512)``: (40, 257) float64, HTK mel, 0 Hz..Nyquist.

    Mel points and their frequencies are stored in Float32Arrays by Meyda; mimicked so the bin edges
    (floors) are identical.
    """
    n, sr, size = N_MEL_BANDS, SAMPLE_RATE, FRAME_LENGTH
    upper_mel = 1125 * math.log(1 + (sr / 2) / 700)
    step = upper_mel / (n + 1)
    edges = []
    for i in range(n + 2):
        mel = float(np.float32(i * step))
        freq = float(np.float32(700 * (math.exp(mel / 1125) - 1)))
        edges.append(math.floor(((size + 1) * freq) / sr))
    bank = np.zeros((n, size // 2 + 1), dtype=np.float64)
    for j in range(n):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        for i in range(lo, mid):
            bank[j, i] = (i - lo) / (mid - lo)
        for i in range(mid, hi):
            bank[j, i] = (hi - i) / (hi - mid)
    bank.flags.writeable = False
    return bank


@lru_cache(maxsize=1)
def _filter_support() -> tuple[np.ndarray, np.ndarray]:
    """Per filter, its bins in order, padded with weight 0: (40, width) indices and weights."""
    bank = mel_filter_bank()[:, : FRAME_LENGTH // 2]
    supports = [np.flatnonzero(row) for row in bank]
    width = max(len(s) for s in supports)
    idx = np.zeros((N_MEL_BANDS, width), dtype=np.intp)
    weights = np.zeros((N_MEL_BANDS, width), dtype=np.float64)
    for j, s in enumerate(supports):
        idx[j, : len(s)] = s
        weights[j, : len(s)] = bank[j, s]
        idx[j, len(s) :] = s[-1] if len(s) else 0
    return idx, weights


def frame_count(n_samples: int) -> int:
    """Number of full 512-sample frames at hop 160 (0 when the signal is shorter than one frame)."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // HOP_LENGTH


def meyda_features(signal_16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Meyda 5.6.3 ``melBands`` and ``rms`` for every frame of a 16 kHz signal.

    Frame i is ``signal[i*160 : i*160 + 512]``; only full frames. Returns mel_bands (n_frames, 40)
    float32 and rms (n_frames,) float32.

    Meyda's arithmetic, reproduced: the windowed frame is float32 x float32 in float64 (exact);
    fftjs is a float64 radix-2 FFT (here numpy's, equal to rounding); the magnitude of bins 0..255
    is stored float32, squared into a float32 power spectrum; each band is a sequential float32 sum
    of float32(weight * power); ``ln(sum + 1)`` stored float32. ``rms`` is taken on the *windowed*
    frame, in float64.
    """
    signal = np.ascontiguousarray(signal_16k, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D, got shape {signal.shape}")
    n = frame_count(signal.shape[0])
    if n == 0:
        return np.zeros((0, N_MEL_BANDS), np.float32), np.zeros(0, np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(signal, FRAME_LENGTH)[::HOP_LENGTH][:n]
    windowed = frames.astype(np.float64) * _hamming_window()
    rms = np.sqrt(np.einsum("ij,ij->i", windowed, windowed) / FRAME_LENGTH).astype(np.float32)

    spectrum = np.fft.rfft(windowed, axis=1)[:, : FRAME_LENGTH // 2]
    amplitude = np.sqrt(spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    power = (amplitude * amplitude).astype(np.float64)

    idx, weights = _filter_support()
    acc = np.zeros((n, N_MEL_BANDS), dtype=np.float32)
    for k in range(idx.shape[1]):
        acc += (power[:, idx[:, k]] * weights[:, k]).astype(np.float32)
    mel = np.log(acc.astype(np.float64) + 1.0).astype(np.float32)
    return mel, rms


def wav_to_utterance(path: str | Path, digit: int | None = None) -> Utterance:
    """Read a WAV file and compute the features the browser would send for it."""
    signal, rate = read_wav(path)
    mel, rms = meyda_features(resample_to_16k(signal, rate))
    return Utterance(mel_bands=mel, rms=rms, digit=digit)


# --------------------------------------------------------------------------------------------------
# Payload


def utterance_payload(utt: Utterance, *, encoding: str | None = None) -> dict[str, Any]:
    """The JSON body a browser sends for ``utt``.

    With ``encoding`` ("float16" or "float32"), ``mel_bands`` and ``rms`` travel as little-endian
    base64 (``mel_bands_b64``, ``rms_b64``, rows of 40 concatenated) instead of JSON arrays.
    """
    payload: dict[str, Any] = {k: CONTRACT[k] for k in _CONTRACT_KEYS}
    if encoding is None:
        payload["mel_bands"] = utt.mel_bands.tolist()
        payload["rms"] = utt.rms.tolist()
    else:
        if encoding not in _ENCODINGS:
            raise ValueError(f"encoding must be one of {sorted(_ENCODINGS)}, got {encoding!r}")
        dtype = _ENCODINGS[encoding]
        payload["encoding"] = encoding
        for key, arr in (("mel_bands", utt.mel_bands), ("rms", utt.rms)):
            payload[f"{key}_b64"] = base64.b64encode(arr.astype(dtype).tobytes()).decode("ascii")
    if utt.digit is not None:
        payload["digit"] = int(utt.digit)
    return payload


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_contract(data: dict, field: str) -> None:
    for key in _CONTRACT_KEYS:
        expected = CONTRACT[key]
        if key not in data:
            raise FeatureError(f"{field}.{key}", f"is required; expected {expected!r}")
        value = data[key]
        if type(value) is not type(expected) or value != expected:
            raise FeatureError(f"{field}.{key}", f"expected {expected!r}, got {_describe(value)}")


def _first_bad_number(values: list, field: str) -> FeatureError:
    """Error path only: locate the first element of a (nested) list that is not a JSON number."""
    for i, row in enumerate(values):
        items = row if type(row) is list else [row]
        for j, v in enumerate(items):
            if type(v) not in _NUMBER_TYPES:
                where = f"{field}[{i}]" + (f"[{j}]" if type(row) is list else "")
                return FeatureError(where, f"expected a number, got {_describe(v)}")
    return FeatureError(field, "expected numbers")


def _parse_mel_list(value: Any, field: str) -> np.ndarray:
    if type(value) is not list:
        raise FeatureError(field, f"expected a list of rows of {N_MEL_BANDS} numbers")
    _check_frame_count(len(value), field)
    if set(map(type, value)) != {list}:
        i = next(i for i, row in enumerate(value) if type(row) is not list)
        raise FeatureError(
            f"{field}[{i}]", f"expected a row of {N_MEL_BANDS} numbers, got {_describe(value[i])}"
        )
    if set(map(len, value)) != {N_MEL_BANDS}:
        i = next(i for i, row in enumerate(value) if len(row) != N_MEL_BANDS)
        raise FeatureError(
            f"{field}[{i}]", f"expected {N_MEL_BANDS} numbers per frame, got {len(value[i])}"
        )
    if not set(map(type, chain.from_iterable(value))) <= _NUMBER_TYPES:
        raise _first_bad_number(value, field)
    try:
        return np.array(value, dtype=np.float64)
    except (OverflowError, ValueError, TypeError) as exc:
        raise FeatureError(field, "expected finite numbers") from exc


def _parse_rms_list(value: Any, field: str) -> np.ndarray:
    if type(value) is not list:
        raise FeatureError(field, "expected a list of numbers, one per frame")
    if len(value) > MAX_FRAMES:
        _check_frame_count(len(value), field)
    if not set(map(type, value)) <= _NUMBER_TYPES:
        raise _first_bad_number(value, field)
    try:
        return np.array(value, dtype=np.float64)
    except (OverflowError, ValueError, TypeError) as exc:
        raise FeatureError(field, "expected finite numbers") from exc


def _parse_b64(value: Any, dtype: np.dtype, field: str, per_frame: int) -> np.ndarray:
    max_chars = 4 * (MAX_FRAMES * per_frame * dtype.itemsize + 2) // 3 + 4
    if type(value) is not str:
        raise FeatureError(field, "expected a base64 string")
    if len(value) > max_chars:
        raise FeatureError(field, f"too long: at most {MAX_FRAMES} frames")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FeatureError(field, "expected standard base64 (A-Z a-z 0-9 + / =)") from exc
    if len(raw) % (dtype.itemsize * per_frame):
        raise FeatureError(
            field, f"byte length {len(raw)} is not a whole number of frames of {per_frame} values"
        )
    # Signalling NaNs warn when cast; every NaN and inf is refused by the range checks after this.
    with np.errstate(invalid="ignore"):
        return np.frombuffer(raw, dtype=dtype).astype(np.float64)


def _audio_seconds(n_frames: int) -> float:
    return (FRAME_LENGTH + (n_frames - 1) * HOP_LENGTH) / SAMPLE_RATE


def _check_frame_count(n: int, field: str) -> None:
    if not MIN_FRAMES <= n <= MAX_FRAMES:
        raise FeatureError(
            field,
            f"expected {MIN_FRAMES} to {MAX_FRAMES} frames ({_audio_seconds(MIN_FRAMES):.2f} s to "
            f"{_audio_seconds(MAX_FRAMES):.2f} s of audio at hop {HOP_LENGTH}), got {n}",
        )


def _check_range(arr: np.ndarray, lo: float, hi: float, field: str) -> None:
    bad = ~((arr >= lo) & (arr <= hi))  # NaN fails both comparisons
    if bad.any():
        pos = np.unravel_index(int(np.argmax(bad)), arr.shape)
        where = field + "".join(f"[{p}]" for p in pos)
        value = float(arr[pos])
        if not math.isfinite(value):
            raise FeatureError(where, f"expected a finite number, got {value!r}")
        raise FeatureError(where, f"expected a number in [{lo}, {hi}], got {value!r}")


def _parse_digit(data: dict, field: str, require_digit: bool) -> int | None:
    value = data.get("digit")
    if value is None:
        if require_digit:
            raise FeatureError(f"{field}.digit", "is required; expected an integer 0..9")
        return None
    if type(value) is not int or not 0 <= value <= 9:
        raise FeatureError(f"{field}.digit", f"expected an integer 0..9, got {_describe(value)}")
    return value


def parse_utterance(
    data: Any, *, field: str = "utterance", require_digit: bool = True
) -> Utterance:
    """Validate one JSON-decoded utterance payload and return it as an :class:`Utterance`.

    Expects the contract fields (``CONTRACT``), ``mel_bands`` (rows of 40 numbers) and ``rms`` (one
    number per frame) as JSON arrays, or as ``mel_bands_b64`` / ``rms_b64`` little-endian base64
    with ``"encoding": "float16" | "float32"``, and ``digit`` (0..9; optional when
    ``require_digit`` is false). Raises :class:`FeatureError` naming the field and what was
    expected; nothing is coerced (no bools, strings, nulls, NaN or infinities).
    """
    if type(data) is not dict:
        raise FeatureError(field, "expected a JSON object with the feature contract fields")
    unknown = set(data) - _ALLOWED_KEYS
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise FeatureError(f"{field}.{key}", f"unexpected field; allowed: {sorted(_ALLOWED_KEYS)}")
    _check_contract(data, field)
    digit = _parse_digit(data, field, require_digit)

    encoding = data.get("encoding")
    # type check first: an unhashable value ({} or []) would make the `in` test raise TypeError.
    if encoding is not None and (type(encoding) is not str or encoding not in _ENCODINGS):
        raise FeatureError(
            f"{field}.encoding", f"expected one of {sorted(_ENCODINGS)}, got {_describe(encoding)}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key in _ARRAY_KEYS:
        b64_key = f"{key}_b64"
        if (key in data) == (b64_key in data):
            raise FeatureError(f"{field}.{key}", f"expected exactly one of {key!r} and {b64_key!r}")
        if b64_key in data:
            if encoding is None:
                raise FeatureError(
                    f"{field}.encoding", f"is required with {b64_key!r}: 'float16' or 'float32'"
                )
            per_frame = N_MEL_BANDS if key == "mel_bands" else 1
            arr = _parse_b64(data[b64_key], _ENCODINGS[encoding], f"{field}.{b64_key}", per_frame)
            arrays[key] = arr.reshape(-1, N_MEL_BANDS) if key == "mel_bands" else arr
        elif key == "mel_bands":
            arrays[key] = _parse_mel_list(data[key], f"{field}.{key}")
        else:
            arrays[key] = _parse_rms_list(data[key], f"{field}.{key}")
    mel, rms = arrays["mel_bands"], arrays["rms"]
    mel_field = f"{field}.mel_bands" + ("_b64" if "mel_bands_b64" in data else "")
    rms_field = f"{field}.rms" + ("_b64" if "rms_b64" in data else "")

    _check_frame_count(mel.shape[0], mel_field)
    if rms.shape[0] != mel.shape[0]:
        raise FeatureError(
            rms_field, f"expected {mel.shape[0]} values (one per frame), got {rms.shape[0]}"
        )
    _check_range(mel, 0.0, MEL_BAND_MAX, mel_field)
    _check_range(rms, 0.0, RMS_MAX, rms_field)
    if float(mel.max()) == float(mel.min()) or float(rms.max()) == 0.0:
        raise FeatureError(mel_field, "no signal: the features are constant (silence?)")
    energy = np.expm1(mel).sum(axis=1)
    bound = float(FRAME_LENGTH**2) * rms * rms * _ENERGY_SLACK + _ENERGY_SLACK_ABS
    over = energy > bound
    if over.any():
        i = int(np.argmax(over))
        raise FeatureError(
            f"{mel_field}[{i}]",
            "band energies exceed what the frame's rms allows; send Meyda's melBands and rms "
            "of the same frame",
        )
    return Utterance(mel_bands=mel.astype(np.float32), rms=rms.astype(np.float32), digit=digit)


# --------------------------------------------------------------------------------------------------
# Server-side post-processing


@dataclass(frozen=True)
class CepstraConfig:
    """Choices of :func:`cepstra`, tuned by measurement (``manage.py evaluate``).

    band_lo, band_hi: mel bands used, ``[band_lo, band_hi)`` (40 = all, up to 8 kHz).
    floor_db: energies are floored at the utterance's peak band energy minus this many dB
        (gain-invariant, unlike Meyda's ``+1``); ``abs_floor`` guards against all-zero input.
    n_ceps: cepstral coefficients kept; ``drop_c0`` drops c0 (overall level) first (fewer won
        on the development folds and lost on fsdd, see ``EngineConfig``).
    vad_db: frames whose energy is more than this many dB below the utterance's loudest frame are
        dropped (None keeps every frame); at least ``min_frames`` loudest frames are kept.
    cmn / cvn: per-utterance mean (and variance) normalisation over the kept frames (CVN halved
        the development EER but raised fsdd's, see ``EngineConfig``: off).
    deltas: 0, 1 (deltas) or 2 (deltas and delta-deltas), regression over +-``delta_width``
        frames, computed on the full sequence before VAD.
    """

    band_lo: int = 0
    band_hi: int = N_MEL_BANDS
    floor_db: float = 80.0
    abs_floor: float = 1e-10
    n_ceps: int = 20
    drop_c0: bool = True
    vad_db: float | None = 30.0
    min_frames: int = 10
    cmn: bool = True
    cvn: bool = False
    deltas: int = 2
    delta_width: int = 2

    def __post_init__(self) -> None:
        n_bands = self.band_hi - self.band_lo
        if not 0 <= self.band_lo < self.band_hi <= N_MEL_BANDS:
            raise ValueError(f"need 0 <= band_lo < band_hi <= {N_MEL_BANDS}")
        if not 1 <= self.n_ceps <= n_bands - int(self.drop_c0):
            raise ValueError(f"n_ceps must be in 1..{n_bands - int(self.drop_c0)}")
        if self.deltas not in (0, 1, 2) or self.delta_width < 1 or self.min_frames < 1:
            raise ValueError("deltas must be 0, 1 or 2; delta_width and min_frames >= 1")

    @property
    def n_dims(self) -> int:
        return self.n_ceps * (1 + self.deltas)


DEFAULT_CONFIG = CepstraConfig()


def _deltas(x: np.ndarray, width: int) -> np.ndarray:
    """Regression deltas over +-width frames, edges repeated: (n_frames, n_dims)."""
    n = x.shape[0]
    return _segment_deltas(x, np.zeros(n, dtype=np.intp), np.full(n, n - 1), width)


def voiced_frames(utt: Utterance, config: CepstraConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Boolean mask (n_frames,) of the frames kept by the energy VAD."""
    n = utt.n_frames
    if config.vad_db is None or n <= config.min_frames:
        return np.ones(n, dtype=bool)
    level = 20 * np.log10(np.maximum(utt.rms.astype(np.float64), 1e-10))
    keep = level >= level.max() - config.vad_db
    if keep.sum() < config.min_frames:
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(-level, kind="stable")[: config.min_frames]] = True
    return keep


@lru_cache(maxsize=8)
def _dct_rows(n_bands: int, start: int, n_ceps: int) -> np.ndarray:
    """Rows ``start:start + n_ceps`` of the orthonormal DCT-II matrix of size n_bands, transposed:
    (n_bands, n_ceps). One small matrix product is faster than a full FFT-based DCT per frame
    when only the first coefficients are kept; equal to ``scipy.fft.dct(norm="ortho")``."""
    k = np.arange(start, start + n_ceps)[None, :]
    n = np.arange(n_bands)[:, None]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_bands)) * np.sqrt(2.0 / n_bands)
    if start == 0:
        m[:, 0] /= np.sqrt(2.0)
    m.flags.writeable = False
    return m


def cepstra(utt: Utterance, config: CepstraConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Server-side features for the engine: (n_kept_frames, config.n_dims) float32.

    E = expm1(melBands) undoes Meyda's ``+1``; ln(E) with a relative floor, DCT-II (orthonormal),
    c0 dropped, ``n_ceps`` kept; deltas; frames kept by the energy VAD; per-utterance CMN.
    """
    return cepstra_many([utt], config)[0]


def _segment_clip(index: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(index, first), last)


def _segment_deltas(x: np.ndarray, first: np.ndarray, last: np.ndarray, width: int) -> np.ndarray:
    """:func:`_deltas` of every segment of ``x`` at once: row i's neighbours are clipped to its
    segment's rows ``first[i]..last[i]`` (the edge repeated), the same sums in the same order."""
    index = np.arange(x.shape[0])
    out = np.zeros_like(x)
    for k in range(1, width + 1):
        ahead = x[_segment_clip(index + k, first, last)]
        behind = x[_segment_clip(index - k, first, last)]
        out += k * (ahead - behind)
    return out / (2 * sum(k * k for k in range(1, width + 1)))


def cepstra_many(
    utts: Sequence[Utterance], config: CepstraConfig = DEFAULT_CONFIG
) -> list[np.ndarray]:
    """``[cepstra(u, config) for u in utts]``, computed over all their frames at once.

    An attempt has 3-5 utterances and an enrolment request up to 30: per utterance, cepstra is
    some forty small numpy calls, so their fixed cost, not the arithmetic, dominated. Here the
    energies, DCT, deltas and VAD levels run once over the stacked frames; per utterance remain
    only its floor, VAD threshold and mean (segment reductions) and the final split.
    :func:`cepstra` is this for one utterance. A batch gives each utterance what it alone gives
    (on the development corpora every value was identical) up to BLAS rounding a DCT row
    differently by its place in the matrix (1e-16 seen).
    """
    out = [np.zeros((0, config.n_dims), dtype=np.float32) for _ in utts]
    spoken = [i for i, u in enumerate(utts) if u.n_frames]
    if spoken:
        stacked = _stacked_cepstra([utts[i] for i in spoken], config)
        for i, feats in zip(spoken, stacked, strict=True):
            out[i] = feats
    return out


def _stacked_cepstra(utts: Sequence[Utterance], config: CepstraConfig) -> list[np.ndarray]:
    """:func:`cepstra_many` of utterances that all have frames."""
    lengths = np.array([u.n_frames for u in utts], dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    first, last = np.repeat(starts, lengths), np.repeat(ends - 1, lengths)
    mel = np.concatenate([u.mel_bands[:, config.band_lo : config.band_hi] for u in utts])
    energy = np.maximum(np.expm1(mel, dtype=np.float64), 0.0)
    peaks = np.maximum(np.maximum.reduceat(energy.max(axis=1), starts), 0.0)
    floors = np.maximum(config.abs_floor, peaks * 10 ** (-config.floor_db / 10))
    logs = np.log(np.maximum(energy, np.repeat(floors, lengths)[:, None]))
    static = logs @ _dct_rows(logs.shape[1], int(config.drop_c0), config.n_ceps)
    parts = [static]
    if config.deltas >= 1:
        parts.append(_segment_deltas(static, first, last, config.delta_width))
    if config.deltas == 2:
        parts.append(_segment_deltas(parts[1], first, last, config.delta_width))
    feats = np.concatenate(parts, axis=1)
    if config.vad_db is None:
        keep = np.ones(feats.shape[0], dtype=bool)
    else:
        rms = np.concatenate([u.rms for u in utts]).astype(np.float64)
        level = 20 * np.log10(np.maximum(rms, 1e-10))
        top = np.maximum.reduceat(level, starts)
        keep = level >= np.repeat(top - config.vad_db, lengths)
        keep[np.repeat(lengths <= config.min_frames, lengths)] = True
        short = np.flatnonzero(np.add.reduceat(keep, starts) < config.min_frames)
        for i in short.tolist():  # too few loud frames: voiced_frames' fallback
            keep[starts[i] : ends[i]] = voiced_frames(utts[i], config)
    kept = feats[keep]
    counts = np.add.reduceat(keep, starts)  # every utterance keeps >= 1 frame
    bounds = np.cumsum(counts)[:-1]
    kept_starts = np.concatenate([[0], bounds])
    if config.cmn:
        # Row-order sums, as ``mean(axis=0)`` adds the rows of each utterance.
        sums = np.add.reduceat(kept[:, : config.n_ceps], kept_starts, axis=0)
        kept[:, : config.n_ceps] -= np.repeat(sums / counts[:, None], counts, axis=0)
    parts = np.split(kept, bounds)
    if config.cvn:
        for part in parts:
            std = part.std(axis=0)
            part /= np.where(std > 1e-8, std, 1.0)
    return [part.astype(np.float32) for part in parts]
