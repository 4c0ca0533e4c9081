"""Replay detection: is a submitted utterance a (near-)copy of one the server has seen before?

The browser computes the features, so an attacker who once captured a user's feature arrays (an
enrollment upload, an earlier verification) can post them again, bit-exact or slightly altered so
that an equality test misses them. Two recordings of the same person saying the same digit are
never that close: the voice, the timing and the room all move. This module measures how close.

A :func:`fingerprint` keeps only what the comparison needs: a coarse log spectrogram of 20 bands
(pairs of Meyda's 40 mel bands summed), relative to the utterance's own peak (so a gain change
does not hide a copy), quantised to 1/16 of a natural-log unit (0.54 dB) over the top 40 dB and
stored as ``uint8``. It cannot be turned back into the features the engine scores.

:func:`distance` aligns two fingerprints at every lag up to ``MAX_LAG`` frames (copies shifted or
cropped) and takes the smallest, over the lags, of the median absolute deviation of their
difference over the cells within ``ACTIVE_DB`` of the peak of either one (a robust spread: a few
altered cells, or clipped noise in near-silent ones, do not hide a copy; a constant offset is
removed). Lengths more than ``2 * MAX_LAG`` frames apart are no copy. Both medians are read off
per-lag histograms of the integer differences, not sorted.

Measured on the development corpora (``bench/replay_cost.py``): different takes of one speaker
saying one word are at least 0.25 apart (fsdd, 1680 pairs) and 0.375 (dspspeech20, 4060 pairs;
its 20 byte-identical duplicate files are copies and excluded); exact copies are at 0, copies
with 1-3 % multiplicative Gaussian noise at <= 0.0625, with additive noise (sigma 1 % of the
spread, clipped at 0) at <= 0.19, shifted, cropped or padded by 1-5 frames at 0.
``REPLAY_DISTANCE`` sits between the two.

That alignment has a blind spot: what the engine ignores, an attacker changes for free. The
engine drops c0 (each frame's level), its speaker score keeps no frame order beyond the deltas,
and its content check's DTW absorbs dropped or repeated frames. So a copy with each frame
attenuated by a random 0-10 dB, or with frames dropped or repeated here and there, scores as the
original while no single lag lines it up (``bench/replay_cost.py`` on fsdd: the alignment alone
caught 0.1 %, 52 % and 64 % of such replays).

:func:`frame_distance` closes it. It compares *frame shapes*: each loud frame's levels relative
to that frame's own peak, floored ``SHAPE_RANGE_DB`` below it, less their mean, so a frame's gain
cancels. It pairs every probe frame with its nearest reference frame, so no order is assumed, and
takes the median over the probe's frames. A copy, however rescaled, thinned or stuttered, finds
most of its frames again at ~0. A fresh take finds few that close, once frames with fewer than
``MIN_SHAPE_BANDS`` bands above their floor are left out (a lone formant or hum over silence
has the same shape in every take). Measured (``bench/replay_cost.py``, service protocol): of
genuine utterances, the nearest reference was 0.056 away at least (one in 5000 fsdd utterances
below 0.1; dspspeech20 0.112); 99 % of copies with 1 % noise at most 0.042, and every compared
copy with 0-10 dB frame gains or a fifth of its frames dropped or repeated at most 0.031.
``FRAME_REPLAY_DISTANCE`` sits between.

A probe is a copy when either measure is below its threshold (``REPLAY_DISTANCE``,
``FRAME_REPLAY_DISTANCE``). Neither cancels a gain per band (a spectral tilt, which the engine's
mean normalisation removes): the alignment catches such copies while the tilt stays within about
3 dB, and ``bench/replay_cost.py`` measures the rest as a known gap.

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
# Frame shapes (frame_distance): a probe's frames within PROBE_LOUD_DB of its loudest are
# compared with a reference's within REFERENCE_LOUD_DB of its own (wider: a probe frame raised a
# little still finds its original); a shape spans SHAPE_RANGE_DB below its frame's peak and needs
# MIN_SHAPE_BANDS bands above that floor; a probe needs MIN_FRAMES such frames (else only the
# alignment judges it); below FRAME_REPLAY_DISTANCE (natural-log units, RMS per band) it is a copy.
PROBE_LOUD_DB = 15.0
REFERENCE_LOUD_DB = 25.0
SHAPE_RANGE_DB = 20.0
MIN_FRAMES = 3
MIN_SHAPE_BANDS = 5
FRAME_REPLAY_DISTANCE = 0.07

_LN_10 = float(np.log(10.0))
_FLOOR_LN = FLOOR_DB / 10 * _LN_10
_ACTIVE_LEVEL = (FLOOR_DB - ACTIVE_DB) / 10 * _LN_10 * LEVELS_PER_LN
_LEVELS_PER_DB = _LN_10 / 10 * LEVELS_PER_LN
# The shape's floor in whole levels (SHAPE_RANGE_DB is 73.7 levels: shapes are integers).
_SHAPE_RANGE = np.int16(np.floor(SHAPE_RANGE_DB * _LEVELS_PER_DB))
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
# Levels are 0..255 (uint8), but ``fingerprint`` makes at most FLOOR_DB's worth (147): the
# histograms below span the differences -top..top of the highest level ``top`` a block holds.
_MAX_LEVEL = 255


def _levels(fp: np.ndarray) -> np.ndarray:
    """A fingerprint's levels as int16, refusing values no fingerprint holds (the histograms
    below have a bin for each difference of two levels 0..255, and no more). ``fingerprint`` and
    ``unpack`` give uint8, which needs no check: the service's references skip it."""
    fp = np.asarray(fp)
    if fp.dtype != FINGERPRINT_DTYPE and fp.size and (fp.min() < 0 or fp.max() > _MAX_LEVEL):
        raise ValueError("fingerprint levels must lie in 0..255")
    return fp.astype(np.int16, copy=False)


def _kth(cumulative: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Bin of each row's ``rank``-th smallest value (0-based) from its cumulative histogram."""
    return (cumulative <= rank[:, None]).sum(axis=1)


def _spread_ranks(
    cumulative: np.ndarray,
    centre2: np.ndarray,
    ranks: tuple[np.ndarray, ...],
    upper: int,
) -> list[np.ndarray]:
    """Per row and rank, the ``rank``-th smallest s = |2 d - centre2| (0-based), or ``upper``
    when it is at least ``upper``: -> [(n_rows,) int64 per rank]. Bin b of ``cumulative``
    counts the differences d <= b - top, for n_bins = 2 top + 1 bins.

    #{s <= t} is a difference of two cumulative counts (the d within (centre2 -+ t) / 2) and
    grows with t: below a small ``upper`` (a cutoff) it is tabulated for every t at once,
    otherwise a binary search over t finds each rank in ~log2(upper) lookups per row.
    """
    n_rows, n_bins = cumulative.shape
    top = (n_bins - 1) // 2
    # counts[:, b]: the number of values in bins < b (cumulative with a leading 0).
    counts = np.zeros((n_rows, n_bins + 1), dtype=cumulative.dtype)
    counts[:, 1:] = cumulative
    rows = np.arange(n_rows)[:, None]
    centre2 = centre2[:, None]

    def within(t: np.ndarray) -> np.ndarray:  # #{s <= t}, t (n_rows, m) or (1, m)
        first = np.clip(top - ((t - centre2) // 2), 0, n_bins)  # ceil((c2 - t) / 2)
        last = np.clip((centre2 + t) // 2 + top + 1, 0, n_bins)  # floor((c2 + t) / 2)
        return counts[rows, last] - counts[rows, first]

    if upper <= 32:
        table = within(np.arange(max(upper, 0))[None, :])
        return [(table <= rank[:, None]).sum(axis=1) for rank in ranks]
    out = []
    for rank in ranks:
        lo = np.zeros((n_rows, 1), dtype=np.int64)
        hi = np.full((n_rows, 1), upper, dtype=np.int64)
        while (lo < hi).any():
            t = (lo + hi) // 2
            found = within(t) > rank[:, None]
            hi = np.where(found, t, hi)
            lo = np.where(found, lo, t + 1)
        out.append(lo[:, 0])
    return out


# Cells handled per block of references: the temporaries of one block (the active mask, int32 keys,
# the int64 histogram) stay in the CPU cache; fresh large arrays cost page faults.
_BLOCK_CELLS = 1 << 17
_UINT16_KEYS = 1 << 16


def distances(
    probe: np.ndarray,
    references: Sequence[np.ndarray],
    max_lag: int = MAX_LAG,
    cutoff: float | None = None,
) -> np.ndarray:
    """:func:`distance` from ``probe`` to each of ``references`` -> (n_references,) float64.

    Every (reference, lag) pair in vectorised int16 arithmetic, a block of references at a time:
    the references are laid on a common frame grid around the probe, and row ``r * n_lags + k``
    of the windows holds reference r's frames facing the probe's at lag ``k - max_lag``. With
    ``cutoff``, distances below it are exact and the others may come back as inf (only "not
    below" is established), which skips most of the work when nothing is close.
    """
    y = _levels(probe)
    n, bands = y.shape
    out = np.full(len(references), np.inf)
    lengths = np.array([np.shape(ref)[0] for ref in references], dtype=np.int64)
    # Lengths more than 2 * max_lag apart are no copy shifted or cropped by up to max_lag.
    keep = np.flatnonzero((lengths > 0) & (np.abs(lengths - n) <= 2 * max_lag))
    if n == 0 or keep.size == 0:
        return out
    n_lags = 2 * max_lag + 1
    block = max(1, _BLOCK_CELLS // (n_lags * n * bands))
    for start in range(0, keep.size, block):
        index = keep[start : start + block]
        block_refs = [references[i] for i in index]
        out[index] = _block_distances(y, block_refs, lengths[index], max_lag, cutoff)
    return out


def _block_distances(
    y: np.ndarray,
    references: list[np.ndarray],
    lengths: np.ndarray,
    max_lag: int,
    cutoff: float | None,
) -> np.ndarray:
    """:func:`distances` of int16 probe ``y`` to ``references`` (frame counts ``lengths``, all
    comparable with the probe's)."""
    n, bands = y.shape
    n_refs, n_lags = len(references), 2 * max_lag + 1
    padded = np.full((n_refs, n + 2 * max_lag, bands), _MISSING, dtype=np.int16)
    for row, ref in enumerate(references):
        frames = min(int(lengths[row]), n + max_lag)  # later frames face no probe frame
        padded[row, max_lag : max_lag + frames] = _levels(np.asarray(ref)[:frames])
    views = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_refs, n_lags, n * bands),
        strides=(padded.strides[0], padded.strides[1], padded.strides[2]),
        writeable=False,
    )
    flat_y = y.reshape(-1)
    # Active: a reference level above _ACTIVE_INT, or any real one (not the padding, which lies
    # below every level) facing a probe level above it. One comparison with a per-cell limit.
    limit = np.where(flat_y > _ACTIVE_INT, _MISSING, _ACTIVE_INT).astype(np.int16)
    active = (views > limit).reshape(n_refs * n_lags, n * bands)
    counts = active.view(np.uint8).sum(axis=1, dtype=np.int32)
    # Frames facing each other at each lag (the padding is known, so no need to count them).
    lag = np.arange(n_lags)[None, :]
    ref_len = lengths[:, None]
    overlap = np.minimum(lag + n, max_lag + ref_len) - np.maximum(lag, max_lag)
    usable = (
        (overlap >= MIN_OVERLAP * np.minimum(ref_len, n))
        & (overlap > 0)
        & (counts.reshape(n_refs, n_lags) >= MIN_ACTIVE_CELLS)
    ).ravel()
    rows = np.flatnonzero(usable)
    out = np.full(n_refs, np.inf)
    if rows.size == 0:
        return out
    # Each usable row's histogram of its active differences: the medians below are read off
    # cumulative counts, exact for integers, without sorting. Row r's bins hold d = -top..top.
    top = max(int(padded.max()), int(y.max()), 0)
    n_bins = 2 * top + 1
    # Keys (row r, difference d) -> r * n_bins + d + top: uint16 when they fit (half the bytes
    # of int32 to write and compress); the int16 differences wrap into place modulo 2^16, and
    # only active cells, whose keys are all below 2^16, are counted.
    narrow = rows.size * n_bins <= _UINT16_KEYS
    keys = np.subtract(views, flat_y, dtype=np.int16 if narrow else np.int32)
    keys = keys.reshape(n_refs * n_lags, n * bands)
    if rows.size < usable.size:
        keys, active = keys[rows], active[rows]
    counts = counts[rows]
    if narrow:
        keys = keys.view(np.uint16)
    keys += (np.arange(rows.size, dtype=keys.dtype) * keys.dtype.type(n_bins) + top)[:, None]
    histogram = np.bincount(keys[active], minlength=rows.size * n_bins)
    cumulative = np.cumsum(histogram.reshape(rows.size, n_bins), axis=1, dtype=np.int32)
    low, high = (counts - 1) // 2, counts // 2  # ranks of the two middle values
    centre2 = _kth(cumulative, low) + _kth(cumulative, high) - 2 * top  # 2 x the median
    # 4 x the spread = the two middle values of s = |2 d - centre2| <= 4 top. With a cutoff,
    # only values that can sum below 64 x cutoff are looked for; beyond, a row is "not below".
    upper = 4 * top + 1 if cutoff is None else int(np.floor(4 * LEVELS_PER_LN * cutoff)) + 1
    s_low, s_high = _spread_ranks(cumulative, centre2, (low, high), upper)
    mad4 = np.where(s_high < upper, s_low + s_high, np.inf)
    spread = np.full(n_refs * n_lags, np.inf)
    spread[rows] = mad4 / (4 * LEVELS_PER_LN)
    return spread.reshape(n_refs, n_lags).min(axis=1)


def _shapes(fingerprints: Sequence[np.ndarray], loud_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints (n_i, 20) -> the shapes of their compared frames, side by side, band-major
    (20, n) float64 in levels, and how many each one has (len(fingerprints),).

    Compared: the frame's peak within ``loud_db`` of its utterance's and above the floor, and
    MIN_SHAPE_BANDS bands above the shape's floor. Shape: the frame's levels less its peak,
    floored at -SHAPE_RANGE_DB, less their mean (a frame's gain and the utterance's drop out).
    Band-major because numpy reduces 20 long rows far faster than many rows of 20.
    """
    lengths = np.array([len(fp) for fp in fingerprints], dtype=np.int64)
    counts = np.zeros(len(fingerprints), dtype=np.int64)
    if not len(fingerprints):
        return np.zeros((FINGERPRINT_BANDS, 0)), counts
    try:
        levels = _levels(np.concatenate(fingerprints))  # int16: levels 0..255 and differences
    except ValueError as error:  # widths or dimensions differ, or levels out of range
        if "0..255" in str(error):
            raise
        levels = None
    if levels is None or levels.ndim != 2 or levels.shape[1] != FINGERPRINT_BANDS:
        shapes = sorted({np.shape(fp) for fp in fingerprints})
        raise ValueError(f"a fingerprint has shape (n_frames, {FINGERPRINT_BANDS}), got {shapes}")
    if not len(levels):
        return np.zeros((FINGERPRINT_BANDS, 0)), counts
    levels = np.ascontiguousarray(levels.T)
    owner = np.repeat(np.arange(len(fingerprints)), lengths)
    peaks = levels.max(axis=0)
    spoken = lengths > 0
    utterance_peaks = np.zeros(len(fingerprints), dtype=np.int16)
    utterance_peaks[spoken] = np.maximum.reduceat(peaks, (np.cumsum(lengths) - lengths)[spoken])
    shapes = np.maximum(levels - peaks, -_SHAPE_RANGE)
    # A frame with fewer bands above its floor (one formant or hum over silence) has a shape
    # every take of that sound shares: it tells copies from takes nothing.
    kept = (
        (peaks > 0)
        & (peaks >= utterance_peaks[owner] - loud_db * _LEVELS_PER_DB)
        & ((shapes > -_SHAPE_RANGE).sum(axis=0) >= MIN_SHAPE_BANDS)
    )
    shapes = np.compress(kept, shapes, axis=1).astype(np.float64)
    counts[:] = np.bincount(owner[kept], minlength=len(fingerprints))
    return shapes - shapes.sum(axis=0) / FINGERPRINT_BANDS, counts


def _nearest_squared(probe: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Squared distance of each probe shape to each of ``frames`` (both band-major):
    -> (n_probe, n_frames)."""
    squared = (probe * probe).sum(axis=0)[:, None] + (frames * frames).sum(axis=0)[None, :]
    return np.maximum(squared - 2.0 * (probe.T @ frames), 0.0)


def frame_distances(probe: np.ndarray, references: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`frame_distance` from ``probe`` to each of ``references`` -> (n_references,) float64
    (inf where the probe has fewer than MIN_FRAMES compared frames or a reference has none)."""
    return _frame_distances([probe], [references])[0]


def _frame_distances(
    probes: Sequence[np.ndarray], references: Sequence[Sequence[np.ndarray]]
) -> list[np.ndarray]:
    """:func:`frame_distances` of each probe to its own ``references[i]``. The shapes of all
    probes, and of all references, are computed in one pass each: per utterance, numpy's
    per-call overhead dominated (an attempt of 5, 15 references each: 1.3 against 2.1 ms)."""
    shapes, rows = _shapes(probes, PROBE_LOUD_DB)
    frames, counts = _shapes([ref for refs in references for ref in refs], REFERENCE_LOUD_DB)
    row_starts, column_starts = np.cumsum(rows) - rows, np.cumsum(counts) - counts
    out, first = [], 0
    for i, refs in enumerate(references):
        found = np.full(len(refs), np.inf)
        mine = slice(first, first + len(refs))
        first += len(refs)
        keep = counts[mine] > 0
        if rows[i] >= MIN_FRAMES and keep.any():
            start = column_starts[mine][keep]
            end = start[-1] + counts[mine][keep][-1]  # the last kept reference's end
            probe = shapes[:, row_starts[i] : row_starts[i] + rows[i]]
            squared = _nearest_squared(probe, frames[:, start[0] : end])
            nearest = np.minimum.reduceat(squared, start - start[0], axis=1)
            found[keep] = np.median(_rms(nearest), axis=0)
        out.append(found)
    return out


def _rms(squared: np.ndarray) -> np.ndarray:
    """Squared distances between shapes (levels) -> RMS difference per band (natural-log units)."""
    return np.sqrt(squared / FINGERPRINT_BANDS) / LEVELS_PER_LN


def frame_distance(probe: np.ndarray, reference: np.ndarray) -> float:
    """How far ``probe`` is from being a frame-by-frame copy of ``reference`` (fingerprints
    (n, 20)): the median, over the probe's compared frames, of the RMS difference per band between
    the frame's shape and the nearest of the reference's (natural-log units; inf when the probe
    has fewer than MIN_FRAMES compared frames or the reference none). Not symmetric: part of an
    utterance is at 0 from it, not the other way round."""
    return float(frame_distances(probe, [reference])[0])


def distance(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Smallest robust spread of ``a - b`` over frame lags -max_lag..max_lag (inf: not
    comparable, or lengths too different for a copy shifted or cropped by up to ``max_lag``
    frames at each end).

    a, b: fingerprints (n_a, 20) and (n_b, 20). Natural-log units of band energy: over the
    cells active in either, the median absolute deviation of the difference at that lag.
    """
    return float(distances(b, [a], max_lag)[0])


def any_replay(
    probes: Sequence[np.ndarray],
    references: Sequence[Sequence[np.ndarray]],
    threshold: float = REPLAY_DISTANCE,
) -> bool:
    """Whether any probe is a near-copy of any of its own ``references[i]`` (all fingerprints):
    frame by frame (all probes at once, the cheaper test) or aligned at a lag."""
    framed = _frame_distances(probes, references)
    if any((found < FRAME_REPLAY_DISTANCE).any() for found in framed):
        return True
    return any(
        (distances(probe, list(refs), cutoff=threshold) < threshold).any()
        for probe, refs in zip(probes, references, strict=True)
    )


def is_replay(
    probe: np.ndarray, references: Iterable[np.ndarray], threshold: float = REPLAY_DISTANCE
) -> bool:
    """Whether ``probe`` is a near-copy of any of ``references`` (all fingerprints)."""
    return any_replay([probe], [list(references)], threshold)
