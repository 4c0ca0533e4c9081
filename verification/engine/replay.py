"""Replay detection: is a submitted utterance a (near-)copy of one the server has seen before?

The browser computes the features, so an attacker who once captured a user's feature arrays (an
enrollment upload, an earlier verification) can post them again, bit-exact or slightly altered so
that an equality test misses them. Two recordings of the same person saying the same digit are
never that close: the voice, the timing and the room all move. This module measures how close.

A :func:`fingerprint` keeps only what the comparison needs: a coarse log spectrogram of 20 bands
(pairs of Meyda's 40 mel bands summed), relative to the utterance's own peak (so a gain change
does not hide a copy), quantised to 1/16 of a natural-log unit (0.54 dB) over the top 40 dB and
stored as ``uint8``. It cannot be turned back into the features the engine scores.

:func:`distance` aligns two fingerprints (copies shifted or cropped by up to ``MAX_LAG`` frames;
the lag is found on the loudness envelopes, then refined) and takes, over the cells within
``ACTIVE_DB`` of the peak of either one, the median absolute deviation of their difference (a
robust spread: a few altered cells, or clipped noise in near-silent ones, do not hide a copy; a
constant offset is removed). Lengths more than ``2 * MAX_LAG`` frames apart are no copy.

Measured on the development corpora (``bench/replay_cost.py``): different takes of one speaker
saying one word are at least 0.25 apart (fsdd, 1680 pairs) and 0.375 (dspspeech20, 4060 pairs;
its 20 byte-identical duplicate files are copies and excluded); exact copies are at 0, copies
with 1-3 % multiplicative Gaussian noise at <= 0.0625, with additive noise (sigma 1 % of the
spread, clipped at 0) at <= 0.19, shifted, cropped or padded by 1-5 frames at 0.
``REPLAY_DISTANCE`` sits between the two.

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
REPLAY_DISTANCE = 0.2

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
    with np.errstate(over="ignore", invalid="ignore"):  # validated input never overflows
        energy = np.maximum(np.expm1(mel), 0.0)
    energy = energy.reshape(mel.shape[0], FINGERPRINT_BANDS, N_MEL_BANDS // FINGERPRINT_BANDS)
    energy = energy.sum(axis=2)
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


_MISSING = np.int16(-1)  # padding: no frame at this lag
_IGNORED = np.int16(32000)  # sorts after every real (absolute) difference


def _middle(sorted_rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Medians of rows whose first ``counts`` entries (sorted) are the values: (n_rows,)."""
    rows = np.arange(sorted_rows.shape[0])
    lo = sorted_rows[rows, np.maximum(counts - 1, 0) // 2].astype(np.float64)
    hi = sorted_rows[rows, counts // 2].astype(np.float64)
    return (lo + hi) / 2


def distance(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Smallest robust spread of ``a - b`` over frame lags -max_lag..max_lag (inf: not
    comparable, or lengths too different for a copy shifted or cropped by up to ``max_lag``
    frames at each end).

    a, b: fingerprints (n_a, 20) and (n_b, 20). Natural-log units of band energy. All lags are
    evaluated at once: row k of the stacked arrays pairs ``b[j]`` with ``a[j + k - max_lag]``.
    """
    x = np.asarray(a, dtype=np.int16)
    y = np.asarray(b, dtype=np.int16)
    n_x, n = x.shape[0], y.shape[0]
    if min(n_x, n) == 0 or abs(n_x - n) > 2 * max_lag:
        return np.inf
    padded = np.full((max(n_x, n) + 2 * max_lag, x.shape[1]), _MISSING, dtype=np.int16)
    padded[max_lag : max_lag + n_x] = x
    # (n_lags, n, bands): the frames of a facing each frame of b, per lag.
    windows = np.lib.stride_tricks.sliding_window_view(padded, n, axis=0)[: 2 * max_lag + 1]
    windows = windows.transpose(0, 2, 1)
    present = windows != _MISSING
    overlap = present[:, :, 0].sum(axis=1)
    active = present & ((windows > _ACTIVE_LEVEL) | (y > _ACTIVE_LEVEL))
    counts = active.reshape(active.shape[0], -1).sum(axis=1)
    usable = (overlap >= MIN_OVERLAP * min(n_x, n)) & (overlap > 0) & (counts >= MIN_ACTIVE_CELLS)
    if not usable.any():
        return np.inf
    windows, active, counts = windows[usable], active[usable], counts[usable]
    diff = np.where(active, windows - y, _IGNORED).reshape(windows.shape[0], -1)
    diff.sort(axis=1)
    centre = _middle(diff, counts)
    # After the sort each row's first ``counts`` entries are its active cells.
    kept = np.arange(diff.shape[1]) < counts[:, None]
    spread = np.where(kept, np.abs(diff - centre[:, None]), float(_IGNORED))
    spread.sort(axis=1)
    return float(_middle(spread, counts).min()) / LEVELS_PER_LN


def nearest(probe: np.ndarray, references: Iterable[np.ndarray]) -> float:
    """Distance of ``probe`` to the closest of ``references`` (inf when there are none)."""
    return min((distance(probe, ref) for ref in references), default=np.inf)


def is_replay(
    probe: np.ndarray, references: Iterable[np.ndarray], threshold: float = REPLAY_DISTANCE
) -> bool:
    """Whether ``probe`` is a near-copy of any of ``references`` (all fingerprints)."""
    return any(distance(probe, ref) < threshold for ref in references)
