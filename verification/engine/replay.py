"""Replay detection: is a submitted utterance a (near-)copy of one the server has seen before?

The browser computes the features, so an attacker who once captured a user's feature arrays (an
enrollment upload, an earlier verification) can post them again, bit-exact or slightly altered so
that an equality test misses them. Two recordings of the same person saying the same digit are
never that close: the voice, the timing and the room all move. This module measures how close.

A :func:`fingerprint` keeps only what the comparison needs: a coarse log spectrogram of 20 bands
(pairs of Meyda's 40 mel bands summed), relative to the utterance's own peak (so a gain change
does not hide a copy), quantised to 1/16 of a natural-log unit (0.54 dB) over the top 40 dB and
stored as ``uint8``. It cannot be turned back into the features the engine scores.

:func:`distance` aligns two fingerprints over frame lags of up to ``MAX_LAG`` (copies shifted or
cropped by a few frames) and takes, over the cells within ``ACTIVE_DB`` of the peak of either
one, the median absolute deviation of their difference (a robust spread: a few altered cells,
or clipped noise in near-silent ones, do not hide a copy; a constant offset is removed).

Measured on the development corpora (``bench/replay_cost.py``): different takes of one speaker
saying one word are at least 0.25 apart (1680 fsdd pairs, 4080 dspspeech20 pairs with
byte-identical duplicate files excluded); exact copies are at 0, copies with 1-3 % Gaussian
noise (relative, or absolute at 1 % of the spread) at <= 0.125, copies shifted or cropped by
1-5 frames at <= 0.04. ``REPLAY_DISTANCE`` sits between the two.

Pure numpy, no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

N_MEL_BANDS = 40
FINGERPRINT_BANDS = 20
# Quantisation: levels per natural-log unit of band energy, and the range kept below the peak.
LEVELS_PER_LN = 16.0
FLOOR_DB = 40.0
# Cells within this many dB of the peak (in either fingerprint) are compared.
ACTIVE_DB = 30.0
# Frame lags tried when aligning (shifts or crops of 1-5 frames, with margin).
MAX_LAG = 8
# An alignment must overlap this share of the shorter utterance, with this many active cells.
MIN_OVERLAP = 0.5
MIN_ACTIVE_CELLS = 20
# Distances below this (natural-log units of band energy) are copies.
REPLAY_DISTANCE = 0.16

_LN_10 = float(np.log(10.0))
_FLOOR_LN = FLOOR_DB / 10 * _LN_10
_ACTIVE_LEVEL = (FLOOR_DB - ACTIVE_DB) / 10 * _LN_10 * LEVELS_PER_LN
FINGERPRINT_DTYPE = np.dtype("u1")


def fingerprint(mel_bands: np.ndarray) -> np.ndarray:
    """Meyda melBands (n_frames, 40) -> replay fingerprint (n_frames, 20) uint8.

    Level 0 is the floor (FLOOR_DB below the utterance's loudest cell); each level is
    1/LEVELS_PER_LN of a natural-log unit above it. An all-silent utterance maps to all zeros.
    """
    mel = np.asarray(mel_bands, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[1] != N_MEL_BANDS:
        raise ValueError(f"mel_bands must have shape (n_frames, {N_MEL_BANDS}), got {mel.shape}")
    energy = np.maximum(np.expm1(mel), 0.0)
    energy = energy.reshape(mel.shape[0], FINGERPRINT_BANDS, -1).sum(axis=2)
    peak = float(energy.max(initial=0.0))
    if not np.isfinite(peak) or peak <= 0.0:
        return np.zeros(energy.shape, dtype=FINGERPRINT_DTYPE)
    floor = np.log(peak) - _FLOOR_LN
    with np.errstate(divide="ignore"):
        levels = (np.log(energy) - floor) * LEVELS_PER_LN
    levels = np.nan_to_num(levels, nan=0.0, neginf=0.0)
    return np.clip(np.round(levels), 0, 255).astype(FINGERPRINT_DTYPE)


def pack(fp: np.ndarray) -> bytes:
    """Fingerprint -> raw bytes (row-major); ``unpack`` needs the frame count back."""
    return np.ascontiguousarray(fp, dtype=FINGERPRINT_DTYPE).tobytes()


def unpack(raw: bytes) -> np.ndarray:
    """Raw bytes from :func:`pack` -> (n_frames, 20) uint8."""
    if len(raw) % FINGERPRINT_BANDS:
        raise ValueError(f"fingerprint length {len(raw)} is not a multiple of {FINGERPRINT_BANDS}")
    return np.frombuffer(raw, dtype=FINGERPRINT_DTYPE).reshape(-1, FINGERPRINT_BANDS)


def distance(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Smallest robust spread of ``a - b`` over frame lags -max_lag..max_lag (inf: incomparable).

    a, b: fingerprints (n_a, 20) and (n_b, 20). Natural-log units of band energy.
    """
    x_all = np.asarray(a, dtype=np.int16)
    y_all = np.asarray(b, dtype=np.int16)
    shortest = min(x_all.shape[0], y_all.shape[0])
    best = np.inf
    for lag in range(-max_lag, max_lag + 1):
        x = x_all[lag:] if lag >= 0 else x_all
        y = y_all if lag >= 0 else y_all[-lag:]
        n = min(x.shape[0], y.shape[0])
        if n == 0 or n < MIN_OVERLAP * shortest:
            continue
        x, y = x[:n], y[:n]
        active = (x > _ACTIVE_LEVEL) | (y > _ACTIVE_LEVEL)
        if int(active.sum()) < MIN_ACTIVE_CELLS:
            continue
        diff = (x - y)[active]
        spread = float(np.median(np.abs(diff - np.median(diff)))) / LEVELS_PER_LN
        best = min(best, spread)
    return best


def nearest(probe: np.ndarray, references: Iterable[np.ndarray]) -> float:
    """Distance of ``probe`` to the closest of ``references`` (inf when there are none)."""
    return min((distance(probe, ref) for ref in references), default=np.inf)


def is_replay(
    probe: np.ndarray, references: Iterable[np.ndarray], threshold: float = REPLAY_DISTANCE
) -> bool:
    """Whether ``probe`` is a near-copy of any of ``references`` (all fingerprints)."""
    return any(distance(probe, ref) < threshold for ref in references)
