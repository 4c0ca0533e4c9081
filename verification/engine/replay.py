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

from collections.abc import Iterable, Sequence

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
# Integer levels: ``level > _ACTIVE_LEVEL`` is ``level > _ACTIVE_INT`` (int16 compares stay int16).
_ACTIVE_INT = np.int16(np.floor(_ACTIVE_LEVEL))
# Sort keys of segment medians: segment * _KEY_SPAN + value + _KEY_BIAS, for values within
# +-_KEY_BIAS (differences of levels are within +-256, twice their deviations within 0..1022).
_KEY_BIAS = 2048
_KEY_SPAN = 2 * _KEY_BIAS


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)


def _segment_medians(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Twice the median of each segment of ``values`` (integers, 1-D, segment i the next
    ``counts[i]`` >= 1 entries): -> (n_segments,) int16.

    One sort of int32 keys (segment, value) orders every segment at once; it touches only the
    active cells, and numpy's 32-bit sort is SIMD on any AVX2 machine.
    """
    segment = np.repeat(np.arange(counts.size, dtype=np.int32) * _KEY_SPAN, counts)
    keys = segment + values.astype(np.int32) + _KEY_BIAS
    keys.sort()
    starts = _starts(counts)
    base = np.arange(counts.size, dtype=np.int32) * _KEY_SPAN
    low = keys[starts + (counts - 1) // 2] - base
    high = keys[starts + counts // 2] - base
    return (low + high - 2 * _KEY_BIAS).astype(np.int16)


def _may_be_below(spread2: np.ndarray, counts: np.ndarray, cutoff: float) -> np.ndarray:
    """Segments whose robust spread may be below ``cutoff``: (n_segments,) bool, never False
    for one that is (a necessary condition, cheaper than the spread itself).

    The spread is (s_lo + s_hi) / (4 * LEVELS_PER_LN) for the two middle values of the integers
    s = |2 d - centre2| (``spread2``, segments as for :func:`_segment_medians`), so below the
    cutoff s_lo <= half := ceil(2 * LEVELS_PER_LN * cutoff) - 1: at least (counts + 1) // 2 of a
    segment's s are at most half, which a count finds without sorting.
    """
    half = int(np.ceil(2 * LEVELS_PER_LN * cutoff)) - 1
    if half < 0:
        return np.zeros(counts.size, dtype=bool)
    inside = np.add.reduceat((spread2 <= half).view(np.uint8), _starts(counts), dtype=np.int64)
    return inside >= (counts + 1) // 2


def distances(
    probe: np.ndarray,
    references: Sequence[np.ndarray],
    max_lag: int = MAX_LAG,
    cutoff: float | None = None,
) -> np.ndarray:
    """:func:`distance` from ``probe`` to each of ``references`` -> (n_references,) float64.

    Every (reference, lag) pair in one vectorised pass of int16 arithmetic: the references are
    laid on a common frame grid around the probe, and row ``r * n_lags + k`` of the windows holds
    reference r's frames facing the probe's at lag ``k - max_lag``. With ``cutoff``, distances
    below it are exact and the others may come back as inf (only "not below" is established),
    which skips most of the work when nothing is close.
    """
    y = np.asarray(probe, dtype=np.int16)
    n, bands = y.shape
    out = np.full(len(references), np.inf)
    lengths = np.array([np.shape(ref)[0] for ref in references], dtype=np.int64)
    # Lengths more than 2 * max_lag apart are no copy shifted or cropped by up to max_lag.
    keep = np.flatnonzero((lengths > 0) & (np.abs(lengths - n) <= 2 * max_lag))
    if n == 0 or keep.size == 0:
        return out
    n_refs, n_lags = keep.size, 2 * max_lag + 1
    padded = np.full((n_refs, n + 2 * max_lag, bands), _MISSING, dtype=np.int16)
    for row, index in enumerate(keep):
        frames = min(int(lengths[index]), n + max_lag)  # later frames face no probe frame
        padded[row, max_lag : max_lag + frames] = np.asarray(references[index])[:frames]
    views = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_refs, n_lags, n * bands),
        strides=(padded.strides[0], padded.strides[1], padded.strides[2]),
        writeable=False,
    )
    windows = np.array(views).reshape(n_refs * n_lags, n * bands)  # a copy: written below
    flat_y = y.reshape(-1)
    active = (windows > _ACTIVE_INT) | ((flat_y > _ACTIVE_INT) & (windows != _MISSING))
    counts = active.view(np.uint8).sum(axis=1, dtype=np.int32)
    # Frames facing each other at each lag (the padding is known, so no need to count them).
    lag = np.arange(n_lags)[None, :]
    ref_len = lengths[keep][:, None]
    overlap = np.minimum(lag + n, max_lag + ref_len) - np.maximum(lag, max_lag)
    usable = (
        (overlap >= MIN_OVERLAP * np.minimum(ref_len, n))
        & (overlap > 0)
        & (counts.reshape(n_refs, n_lags) >= MIN_ACTIVE_CELLS)
    ).ravel()
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        return out
    # The usable rows' active differences, row after row (a row's counts[row] >= 1 entries).
    if rows.size < usable.size:
        windows, active = windows[rows], active[rows]
    counts = counts[rows]
    diff = np.subtract(windows, flat_y, out=windows)[active]  # int16: within +-256
    centre2 = _segment_medians(diff, counts)  # 2 x the median difference
    # 2 x |diff - median|: integers (int16, <= 1022), so the robust spread is exact.
    spread2 = np.abs(2 * diff - np.repeat(centre2, counts))
    if cutoff is not None:
        near = _may_be_below(spread2, counts, cutoff)
        rows, spread2, counts = rows[near], spread2[np.repeat(near, counts)], counts[near]
        if rows.size == 0:
            return out
    mad4 = _segment_medians(spread2, counts)  # 4 x the spread
    spread = np.full(n_refs * n_lags, np.inf)
    spread[rows] = mad4 / (4 * LEVELS_PER_LN)
    out[keep] = spread.reshape(n_refs, n_lags).min(axis=1)
    return out


def distance(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Smallest robust spread of ``a - b`` over frame lags -max_lag..max_lag (inf: not
    comparable, or lengths too different for a copy shifted or cropped by up to ``max_lag``
    frames at each end).

    a, b: fingerprints (n_a, 20) and (n_b, 20). Natural-log units of band energy: over the
    cells active in either, the median absolute deviation of the difference at that lag.
    """
    return float(distances(b, [a], max_lag)[0])


def nearest(probe: np.ndarray, references: Iterable[np.ndarray]) -> float:
    """Distance of ``probe`` to the closest of ``references`` (inf when there are none)."""
    return float(distances(probe, list(references)).min(initial=np.inf))


def is_replay(
    probe: np.ndarray, references: Iterable[np.ndarray], threshold: float = REPLAY_DISTANCE
) -> bool:
    """Whether ``probe`` is a near-copy of any of ``references`` (all fingerprints)."""
    return bool((distances(probe, list(references), cutoff=threshold) < threshold).any())
