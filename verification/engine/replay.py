"""Replay detection: is a submitted utterance a (near-)copy of one the server has seen before?

The browser computes the features, so an attacker who once captured a user's feature arrays (an
enrollment upload, an earlier verification) can post them again, bit-exact or altered so that an
equality test misses them. What the engine ignores, the attacker changes for free: it drops c0
(each frame's level), its cepstral mean normalisation removes a gain per mel band (a spectral
tilt), its speaker score keeps no frame order beyond the deltas, and its content check's DTW
absorbs dropped or repeated frames. Two recordings of the same person saying the same digit are
never close in what is left: the voice, the timing and the room all move. This module measures
how close.

A :func:`fingerprint` keeps a log spectrogram of Meyda's 40 mel bands relative to the
utterance's own peak, quantised to 1/16 of a natural-log unit (0.54 dB) over the top 40 dB and
stored as ``uint8``: one byte per band and frame. A probe is a copy when either of two measures
finds it close to a reference.

:func:`change_distance` compares *spectral changes*: the difference between two loud frames a
lag apart, band by band, over the bands that are above the floor in both, less its mean over
those bands. A frame's gain and a band's gain both cancel in it, whatever they are. Every change
of the probe between neighbouring frames is paired with the nearest change of the reference
between frames 1 or 2 apart: no order is assumed, so a shift or a dropped frame changes nothing,
and a repeated frame makes a change of zero, which is not compared. The distance is the median
over the probe's changes. A copy, however rescaled, tilted, thinned or stuttered, finds its
changes again at about the quantisation's 0.04. A fresh take of the same digit finds few that
close, once changes too small to tell takes apart are left out (``MIN_CHANGE``: a held vowel
changes little in every take). Below ``CHANGE_DISTANCE``, it is a copy.

Differences of two frames carry the noise of both, so noise added to a copy moves its changes
twice as far as its frames. :func:`aligned_distance` is the measure for noisy copies: it aligns
the two spectrograms, pairs of bands summed (which averages a copy's noise), at lags up to
``MAX_LAG`` frames (copies shifted or cropped) and takes the smallest, over the lags, of the
median absolute deviation of their difference over the cells within ``ACTIVE_DB`` of the peak
of either (a robust spread: a few altered cells, or noise in near-silent ones, do not hide a
copy; a constant offset is removed). Only the ``CANDIDATE_LAGS`` lags where the two frame
profiles (each frame's levels summed) fit best are measured: a copy's own lag is among them.
Below ``ALIGNED_DISTANCE``, it is a copy. It misses what the changes catch (gains per frame or
per band, frames dropped or repeated), and the changes miss copies with a few percent of noise,
which it catches. :func:`centred_distances` covers a copy with gains and noise at once: each
band's median difference (at the best-fitting lag), or each frame's (at the best two), or on a
long enough alignment both, are removed before the spread is taken, so a gain per band, per
frame, or both, cancels. Fresh takes come closer in it too, so below the stricter
``CENTRED_DISTANCE`` it is a copy.

``bench/replay_cost.py`` measures both on the development corpora, with the service's
protocol: what genuine users lose (takes flagged as copies), and which replayed attempts the
engine would accept and the check lets through. ``docs/benchmarks.md`` has the figures. No
measure of closeness catches a copy altered by more than two takes differ; for such a copy,
only the engine's own score stands between the attacker and an accept.

Pure numpy, no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

N_MEL_BANDS = 40
FINGERPRINT_BANDS = N_MEL_BANDS
# Quantisation: levels per natural-log unit of band energy, and the range kept below the peak.
LEVELS_PER_LN = 16.0
FLOOR_DB = 40.0
# Compared frames: within PROBE_LOUD_DB of the probe's loudest frame, and within the wider
# REFERENCE_LOUD_DB of a reference's (a probe frame raised a little still finds its original).
PROBE_LOUD_DB = 15.0
REFERENCE_LOUD_DB = 25.0
# Frame lags of the changes: the probe's between neighbours, a reference's also across one frame
# (the probe's neighbours after a frame was dropped).
PROBE_LAGS = (1,)
REFERENCE_LAGS = (1, 2)
# A change is compared over the bands within BAND_RANGE_DB of their frame's peak in all its
# frames (noise near the floor moves a logarithm most), at least MIN_BANDS of them; a probe's
# change needs a spread of MIN_CHANGE (natural-log units, RMS over bands), and a probe needs
# MIN_CHANGES such changes (else the changes do not judge it: too little to tell).
BAND_RANGE_DB = 30.0
MIN_BANDS = 8
MIN_CHANGE = 0.1
MIN_CHANGES = 3
# Change distances below this (natural-log units, RMS per band) are copies: on both development
# corpora, copies without noise lie within 0.05 and fresh takes beyond 0.10 (noisy copies are
# the alignment's to catch).
CHANGE_DISTANCE = 0.08
# The alignment (aligned_distance): on pairs of bands summed (averaging a copy's noise), cells
# within ACTIVE_DB of the peak (in either) are compared, at lags up to MAX_LAG frames (shifts or
# crops of 1-5 frames, with margin); an alignment must overlap MIN_OVERLAP of the shorter
# utterance with MIN_ACTIVE_CELLS active cells; distances below ALIGNED_DISTANCE (natural-log
# units, a robust spread) are copies.
ACTIVE_DB = 30.0
MAX_LAG = 8
# Lags measured in full, of the 2 MAX_LAG + 1: those where the frame profiles fit best (the
# alignment's cost grows with them). bench/replay_cost.py catches what all 17 caught, but for
# 10 % noise on fsdd: 99.6 against 99.8 % of the utterances, no further attempt let through.
CANDIDATE_LAGS = 3
MIN_OVERLAP = 0.5
MIN_ACTIVE_CELLS = 20
ALIGNED_DISTANCE = 0.2
# The centred alignment (centred_distances): the alignment with each band's median difference
# removed first, which cancels a gain per band (the alignment's blind spot), or each frame's,
# which cancels a gain per frame, or, with MIN_POLISHED_FRAMES frames to go on, both (polished).
# Each brings fresh takes closer, hence the stricter threshold (spreads come in steps of 1/64):
# on fsdd, 6 of 3000 recordings have another of the same speaker and digit at 0.125 (4) or
# 0.141 (2) by band, none closer; copies with band gains and 3 % noise lie mostly at 0.0625, 99 %
# at 0.125 or below. A band is centred on at least MIN_BAND_CELLS active cells, a frame on
# MIN_FRAME_CELLS, else left out. By band, the best-fitting lag is measured; by frame, the first
# CENTRED_LAGS: gains per frame move the frame profiles, and a copy's own lag came second for 3
# of 10 fsdd copies with frame gains and noise. Polishing both on fewer frames brought fresh
# takes of short digits to 0.0625 (12 of 1000 fsdd genuine trials flagged); on 30 or more it
# still brings some one step closer (fsdd george's 4 to 0.125), so it counts POLISH_MARGIN more.
MIN_BAND_CELLS = 4
MIN_FRAME_CELLS = 4
MIN_POLISHED_FRAMES = 30
POLISH_MARGIN = 1 / 64
CENTRED_LAGS = 2
CENTRED_DISTANCE = 0.13

_LN_10 = float(np.log(10.0))
_FLOOR_LN = FLOOR_DB / 10 * _LN_10
_LEVELS_PER_DB = _LN_10 / 10 * LEVELS_PER_LN
_ACTIVE_LEVEL = (FLOOR_DB - ACTIVE_DB) / 10 * _LN_10 * LEVELS_PER_LN
FINGERPRINT_DTYPE = np.dtype("u1")
_MAX_LEVEL = 255
# Each level's band energy relative to the floor; the floor itself (level 0) counts as none.
_ENERGY_OF_LEVEL = np.r_[0.0, np.exp(np.arange(1, _MAX_LEVEL + 1) / LEVELS_PER_LN)].astype("f4")


def fingerprint(mel_bands: np.ndarray) -> np.ndarray:
    """Meyda melBands (n_frames, 40) -> replay fingerprint (n_frames, 40) uint8.

    Level 0 is the floor (FLOOR_DB below the utterance's loudest cell); each level is
    1/LEVELS_PER_LN of a natural-log unit above it. An all-silent utterance maps to all zeros.
    """
    mel = np.asarray(mel_bands, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[1] != N_MEL_BANDS:
        raise ValueError(f"mel_bands must have shape (n_frames, {N_MEL_BANDS}), got {mel.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # validated input never overflows
        energy = np.maximum(np.expm1(mel), 0.0)
    peak = float(energy.max(initial=0.0))
    if not np.isfinite(peak) or peak <= 0.0:
        return np.zeros(energy.shape, dtype=FINGERPRINT_DTYPE)
    floor = np.log(peak) - _FLOOR_LN
    with np.errstate(divide="ignore"):
        levels = (np.log(energy) - floor) * LEVELS_PER_LN
    levels = np.nan_to_num(levels, nan=0.0, neginf=0.0)
    return np.clip(np.round(levels), 0, _MAX_LEVEL).astype(FINGERPRINT_DTYPE)


def pack(fp: np.ndarray) -> bytes:
    """Fingerprint -> raw bytes (row-major); ``unpack`` needs the frame count back."""
    return np.ascontiguousarray(fp, dtype=FINGERPRINT_DTYPE).tobytes()


def unpack(raw: bytes) -> np.ndarray:
    """Raw bytes from :func:`pack` -> (n_frames, 40) uint8."""
    if len(raw) % FINGERPRINT_BANDS:
        raise ValueError(f"fingerprint length {len(raw)} is not a multiple of {FINGERPRINT_BANDS}")
    return np.frombuffer(raw, dtype=FINGERPRINT_DTYPE).reshape(-1, FINGERPRINT_BANDS)


def _stack(fingerprints: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints (n_i, 40) -> their frames one after another as int16 levels, and how many
    each has. Refuses other widths, and levels no fingerprint holds (0..255)."""
    arrays = [np.asarray(fp) for fp in fingerprints]
    wrong = sorted({a.shape for a in arrays if a.ndim != 2 or a.shape[1] != FINGERPRINT_BANDS})
    if wrong:
        raise ValueError(f"a fingerprint has shape (n_frames, {FINGERPRINT_BANDS}), got {wrong}")
    for a in arrays:
        if a.dtype != FINGERPRINT_DTYPE and a.size and (a.min() < 0 or a.max() > _MAX_LEVEL):
            raise ValueError("fingerprint levels must lie in 0..255")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    if not lengths.sum():
        return np.zeros((0, FINGERPRINT_BANDS), dtype=np.int16), lengths
    return np.concatenate(arrays).astype(np.int16), lengths


def _changes(
    fingerprints: Sequence[np.ndarray], loud_db: float, lags: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spectral changes of each fingerprint between its loud frames ``lags`` apart ->
    (values, masks, counts): values (n, 40) int16 level differences, zero outside the
    compared bands; masks (n, 40) bool, true on the bands within BAND_RANGE_DB of the peak in
    both frames; counts (len(lags), len(fingerprints)), how many changes each fingerprint has
    at each lag. By lag, then fingerprint, then frame: each fingerprint's changes at one lag lie
    together, as differences of two slices of all the frames."""
    levels, lengths = _stack(fingerprints)
    counts = np.zeros((len(lags), len(lengths)), dtype=np.int64)
    if not len(levels):
        empty = np.zeros((0, FINGERPRINT_BANDS), dtype=np.int16)
        return empty, empty.astype(bool), counts
    owner = np.repeat(np.arange(len(lengths)), lengths)
    peaks = levels.max(axis=1)
    spoken = lengths > 0
    utterance_peaks = np.maximum.reduceat(peaks, (np.cumsum(lengths) - lengths)[spoken])
    loud_level = np.repeat(utterance_peaks, lengths[spoken]) - loud_db * _LEVELS_PER_DB
    loud = (peaks > 0) & (peaks >= loud_level)
    bright = (levels > 0) & (levels >= (peaks - BAND_RANGE_DB * _LEVELS_PER_DB)[:, None])
    values, masks = [], []
    for row, lag in enumerate(lags):
        kept = (owner[lag:] == owner[:-lag]) & loud[lag:] & loud[:-lag]
        mask = np.compress(kept, bright[lag:] & bright[:-lag], axis=0)
        change = np.compress(kept, levels[lag:] - levels[:-lag], axis=0)  # int16: half the bytes
        values.append(change * mask)
        masks.append(mask)
        counts[row] = np.bincount(owner[lag:][kept], minlength=len(lengths))
    return np.concatenate(values), np.concatenate(masks), counts


@dataclass(frozen=True, eq=False)
class Reference:
    """A fingerprint prepared to be compared with: its changes at REFERENCE_LAGS (per lag,
    int16 values zero outside the compared bands, and the bool mask of those bands) and its
    coarse levels (:func:`_coarse`). A stored or remembered utterance never changes, so a caller
    that keeps its references (``services`` does, per process) prepares each only once."""

    n_frames: int
    values: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    coarse: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self.values, *self.masks, self.coarse))


def prepare(fingerprints: Sequence[np.ndarray]) -> list[Reference]:
    """Fingerprints (n_i, 40) -> their :class:`Reference`s, all in one pass. Each owns its
    arrays (keeping one keeps no other alive), read-only: a cache shares them between threads.
    Refuses what :func:`_stack` refuses."""
    values, masks, counts = _changes(fingerprints, REFERENCE_LOUD_DB, REFERENCE_LAGS)
    coarse = _coarse(fingerprints)
    bounds = np.cumsum(counts.ravel())[:-1]  # lag-major: every fingerprint at a lag, then the next
    values, masks = np.split(values, bounds), np.split(masks, bounds)
    n, lags = len(fingerprints), range(len(REFERENCE_LAGS))
    return [
        Reference(
            n_frames=len(coarse[i]),
            values=tuple(_owned(values[row * n + i]) for row in lags),
            masks=tuple(_owned(masks[row * n + i]) for row in lags),
            coarse=_owned(coarse[i]),
        )
        for i in range(n)
    ]


def _owned(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _prepared(references: Sequence[Sequence[Reference | np.ndarray]]) -> list[list[Reference]]:
    """Each probe's references as :class:`Reference`s: the raw fingerprints among them are
    prepared in one pass."""
    raw = [ref for refs in references for ref in refs if not isinstance(ref, Reference)]
    made = iter(prepare(raw)) if raw else iter(())
    return [
        [ref if isinstance(ref, Reference) else next(made) for ref in refs] for refs in references
    ]


def _telling(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Which changes can tell a copy from a take: MIN_BANDS bands compared and a spread about
    their mean of MIN_CHANGE (a held sound changes as little in every take)."""
    bands = masks.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = values.sum(axis=1) / bands
        spread = (values * values).sum(axis=1) / bands - mean * mean
    return (bands >= MIN_BANDS) & (spread >= (MIN_CHANGE * LEVELS_PER_LN) ** 2)


def _mean_squares(
    values: np.ndarray, masks: np.ndarray, others: np.ndarray, other_masks: np.ndarray
) -> np.ndarray:
    """For every pair of a change and an other change: the mean square, over the bands both
    compare, of their difference less its mean -> (n, m) float32 levels^2 (inf where fewer than
    MIN_BANDS bands are common).

    Over the common bands M, sum (p - q)^2 - (sum (p - q))^2 / |M|: p and q are zero outside
    their masks, so each sum is a matrix product of the masked rows."""
    common = masks @ other_masks.T
    total = values @ other_masks.T - masks @ others.T
    squares = (values * values) @ other_masks.T + masks @ (others * others).T
    squares -= 2.0 * (values @ others.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_squares = (squares - total * total / common) / common
    return np.where(common >= MIN_BANDS, np.maximum(mean_squares, 0.0), np.inf)


def _change_distances(
    probes: Sequence[np.ndarray], references: Sequence[Sequence[Reference | np.ndarray]]
) -> list[np.ndarray]:
    """:func:`change_distances` of each probe to its own ``references[i]``. The changes of all
    probes are found in one pass, and all references' are laid out together (one utterance at a
    time, numpy's per-call overhead would dominate)."""
    values, masks, rows = _changes(probes, PROBE_LOUD_DB, PROBE_LAGS)
    values, masks = values.astype(np.float32), masks.astype(np.float32)
    telling = _telling(values, masks)
    references = _prepared(references)
    flat = [ref for refs in references for ref in refs]
    lags = range(len(REFERENCE_LAGS))
    counts = np.array([[len(ref.values[lag]) for ref in flat] for lag in lags], dtype=np.int64)
    counts = counts.reshape(len(lags), len(flat))
    others = np.concatenate(
        [ref.values[lag] for lag in lags for ref in flat] or [np.zeros((0, FINGERPRINT_BANDS))]
    ).astype(np.float32)
    other_masks = np.concatenate(
        [ref.masks[lag] for lag in lags for ref in flat] or [np.zeros((0, FINGERPRINT_BANDS))]
    ).astype(np.float32)
    row_starts = np.cumsum(rows[0]) - rows[0]
    column_starts = (np.cumsum(counts) - counts.ravel()).reshape(counts.shape)
    out, first = [], 0
    for i, refs in enumerate(references):
        mine = slice(first, first + len(refs))
        first += len(refs)
        probe = row_starts[i] + np.flatnonzero(telling[row_starts[i] : row_starts[i] + rows[0, i]])
        if len(probe) < MIN_CHANGES:
            out.append(np.full(len(refs), np.inf))
            continue
        nearest = np.full((len(probe), len(refs)), np.inf, dtype=np.float32)
        for lag_counts, lag_starts in zip(counts[:, mine], column_starts[:, mine], strict=True):
            keep = lag_counts > 0
            if not keep.any():
                continue
            start = lag_starts[keep]
            end = start[-1] + lag_counts[keep][-1]  # the last kept reference's end
            squares = _mean_squares(
                values[probe], masks[probe], others[start[0] : end], other_masks[start[0] : end]
            )
            found = np.minimum.reduceat(squares, start - start[0], axis=1)
            nearest[:, keep] = np.minimum(nearest[:, keep], found)
        out.append(np.median(np.sqrt(nearest), axis=0).astype(np.float64) / LEVELS_PER_LN)
    return out


def change_distances(probe: np.ndarray, references: Sequence[Reference | np.ndarray]) -> np.ndarray:
    """:func:`change_distance` from ``probe`` to each of ``references`` -> (n_references,)
    float64."""
    return _change_distances([probe], [references])[0]


def change_distance(probe: np.ndarray, reference: np.ndarray) -> float:
    """How far ``probe``'s changes are from a copy of ``reference``'s (fingerprints (n, 40)): the
    median, over the probe's telling changes between neighbouring frames, of the RMS per band
    of its difference from the nearest of the reference's changes (natural-log units; inf when
    the probe has fewer than MIN_CHANGES telling changes or the reference none). Not symmetric:
    part of an utterance is at 0 from it, not the other way round."""
    return float(change_distances(probe, [reference])[0])


_MISSING = np.int16(-1)  # padding: no frame at this lag
_NEVER = np.iinfo(np.int16).max  # above every value the centred spread sorts
# Integer levels: ``level > _ACTIVE_LEVEL`` is ``level > _ACTIVE_INT`` (int16 compares stay int16).
_ACTIVE_INT = np.int16(np.floor(_ACTIVE_LEVEL))


def _coarse(fingerprints: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Fingerprints (n_i, 40) -> the alignment's coarser ones (n_i, 20) int16, all in one pass:
    pairs of bands summed, relative to the pairs' peak, as :func:`fingerprint` would quantise
    them (levels 0..147; a band at the floor counts as none). Refuses levels no fingerprint
    holds (0..255)."""
    levels, lengths = _stack(fingerprints)
    energy = np.take(_ENERGY_OF_LEVEL, levels)
    energy = energy[:, 0::2] + energy[:, 1::2]  # (numpy sums an axis of 2 far slower)
    spoken = lengths > 0
    peaks = np.zeros(len(lengths), dtype=np.float32)
    if len(levels):
        peaks[spoken] = np.maximum.reduceat(
            energy.max(axis=1), (np.cumsum(lengths) - lengths)[spoken]
        )
    with np.errstate(divide="ignore", invalid="ignore"):  # -inf at the floor, nan in silence
        ratio = np.log(energy / np.repeat(peaks, lengths)[:, None])
    # fmax: the floor for both (levels 0..147, as ratios are at most 1).
    coarse = np.round((np.fmax(ratio, -_FLOOR_LN) + _FLOOR_LN) * LEVELS_PER_LN)
    return np.split(coarse.astype(np.int16), np.cumsum(lengths)[:-1])


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

    if upper <= 64:
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


# Cells measured per block of references (at their candidate lags): the temporaries of one block
# (the active mask, int32 keys, the int64 histogram) stay in the CPU cache; fresh large arrays
# cost page faults.
_BLOCK_CELLS = 1 << 17
_UINT16_KEYS = 1 << 16


def aligned_distances(
    probe: np.ndarray,
    references: Sequence[Reference | np.ndarray],
    max_lag: int = MAX_LAG,
    cutoff: float | None = None,
) -> np.ndarray:
    """:func:`aligned_distance` from ``probe`` to each of ``references`` -> (n_references,)
    float64. With ``cutoff``, distances below it are exact and the others may come back as inf
    (only "not below" is established), which skips most of the work when nothing is close."""
    return _alignment(probe, references, max_lag, cutoff)[0]


def centred_distances(
    probe: np.ndarray,
    references: Sequence[Reference | np.ndarray],
    max_lag: int = MAX_LAG,
    cutoff: float | None = None,
) -> np.ndarray:
    """The alignment with a gain per band, per frame, or both cancelled, from ``probe`` to each
    of ``references`` -> (n_references,) float64 (inf: not comparable): the smallest robust
    spread. By band, at each reference's best-fitting lag (the first of its candidate lags),
    each band's median difference over its active cells is removed first, bands with fewer than
    MIN_BAND_CELLS active cells left out; by frame, at its first CENTRED_LAGS candidate lags,
    each frame's, frames with fewer than MIN_FRAME_CELLS left out. Where MIN_POLISHED_FRAMES
    frames keep MIN_FRAME_CELLS cells in those bands, the frame measure is polished: over those
    cells, each band's median, then each frame's (counted POLISH_MARGIN further). ``cutoff`` as
    for :func:`aligned_distances`."""
    return _alignment(probe, references, max_lag, centred_cutoff=cutoff)[1]


def _alignment(
    probe: np.ndarray,
    references: Sequence[Reference | np.ndarray],
    max_lag: int = MAX_LAG,
    cutoff: float | None = None,
    centred_cutoff: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(aligned, centred) distances from ``probe`` to each of ``references``, in one pass.

    On the coarse fingerprints (:func:`_coarse`), each reference's candidate lags
    (:func:`_candidate_lags`) in vectorised int16 arithmetic, a block of references at a time:
    the references are laid on a common frame grid around the probe (:func:`_grid`). ``cutoff``
    and ``centred_cutoff``: as for :func:`aligned_distances`, for each measure.
    """
    (y,) = _coarse([probe])
    n, bands = y.shape
    aligned, centred = np.full(len(references), np.inf), np.full(len(references), np.inf)
    lengths = np.array(
        [ref.n_frames if isinstance(ref, Reference) else np.shape(ref)[0] for ref in references],
        dtype=np.int64,
    )
    # Lengths more than 2 * max_lag apart are no copy shifted or cropped by up to max_lag.
    keep = np.flatnonzero((lengths > 0) & (np.abs(lengths - n) <= 2 * max_lag))
    if n == 0 or keep.size == 0:
        return aligned, centred
    n_lags = 2 * max_lag + 1
    block = max(1, _BLOCK_CELLS // (min(CANDIDATE_LAGS, n_lags) * n * bands))
    kept = [references[i] for i in keep]
    raw = [ref for ref in kept if not isinstance(ref, Reference)]
    made = iter(_coarse(raw) if raw else ())
    coarse = [ref.coarse if isinstance(ref, Reference) else next(made) for ref in kept]
    for start in range(0, keep.size, block):
        index = keep[start : start + block]
        found = _block_distances(
            y, coarse[start : start + block], lengths[index], max_lag, (cutoff, centred_cutoff)
        )
        aligned[index], centred[index] = found
    return aligned, centred


def _candidate_lags(y: np.ndarray, padded: np.ndarray, comparable: np.ndarray) -> np.ndarray:
    """The lags the alignment measures -> (n_refs, CANDIDATE_LAGS) lag indices, best first (not
    all comparable where fewer are): of each reference's ``comparable`` lags, the
    CANDIDATE_LAGS whose frame profiles differ least from
    the probe's (the variance of the difference over the frames facing each other). A frame's
    profile is how far its cells rise above the active level, summed: noise in near-silent
    cells, where a logarithm moves most, leaves it alone.

    A copy, shifted or cropped, matches the probe's profile at its own lag far better than a
    frame away (speech moves more from frame to frame than noise moves a sum of 20 bands), and a
    gain per band only offsets it; measuring every lag in full was most of the check's cost."""
    n, n_refs, n_lags = len(y), len(padded), comparable.shape[1]
    mine = np.maximum(y - _ACTIVE_INT, 0).sum(axis=1, dtype=np.int32)
    theirs = np.maximum(padded - _ACTIVE_INT, 0).sum(axis=2, dtype=np.int32)
    present = (padded[:, :, 0] != _MISSING).astype(np.int32)

    def windows(a: np.ndarray) -> np.ndarray:  # (n_refs, n + 2 max_lag) -> (n_refs, n_lags, n)
        return np.lib.stride_tricks.as_strided(
            a, shape=(n_refs, n_lags, n), strides=(a.strides[0], a.strides[1], a.strides[1])
        )

    facing = windows(present)
    difference = (windows(theirs) - mine) * facing
    frames = np.maximum(facing.sum(axis=2), 1)
    mean = difference.sum(axis=2) / frames
    squares = np.einsum("rln,rln->rl", difference, difference, dtype=np.int64)
    variance = squares / frames - mean * mean
    variance = np.where(comparable, variance, np.inf)
    return np.argsort(variance, axis=1, kind="stable")[:, :CANDIDATE_LAGS]


def _grid(
    y: np.ndarray, references: list[np.ndarray], lengths: np.ndarray, max_lag: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coarse ``references`` laid on a common frame grid around coarse probe ``y`` -> (padded
    (n_refs, n + 2 max_lag, bands) int16, padding _MISSING; views (n_refs, n_lags, n * bands),
    row [r, k] reference r's levels facing the probe's at lag k - max_lag; comparable
    (n_refs, n_lags) bool, the lags where enough frames face each other)."""
    n, bands = y.shape
    n_refs, n_lags = len(references), 2 * max_lag + 1
    padded = np.full((n_refs, n + 2 * max_lag, bands), _MISSING, dtype=np.int16)
    for row, ref in enumerate(references):
        frames = min(int(lengths[row]), n + max_lag)  # later frames face no probe frame
        padded[row, max_lag : max_lag + frames] = ref[:frames]
    views = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_refs, n_lags, n * bands),
        strides=(padded.strides[0], padded.strides[1], padded.strides[2]),
        writeable=False,
    )
    # Frames facing each other at each lag (the padding is known, so no need to count them).
    lag = np.arange(n_lags)[None, :]
    ref_len = lengths[:, None]
    overlap = np.minimum(lag + n, max_lag + ref_len) - np.maximum(lag, max_lag)
    comparable = (overlap >= MIN_OVERLAP * np.minimum(ref_len, n)) & (overlap > 0)
    return padded, views, comparable


def _active_limit(y: np.ndarray) -> np.ndarray:
    """Per probe cell, the level a facing reference cell must exceed to be active: any real one
    (not the padding) where the probe's is above _ACTIVE_INT, else above _ACTIVE_INT too."""
    return np.where(y.reshape(-1) > _ACTIVE_INT, _MISSING, _ACTIVE_INT).astype(np.int16)


def _block_distances(
    y: np.ndarray,
    references: list[np.ndarray],
    lengths: np.ndarray,
    max_lag: int,
    cutoffs: tuple[float | None, float | None],
) -> tuple[np.ndarray, np.ndarray]:
    """(aligned, centred) distances of coarse probe ``y`` to coarse ``references`` (frame
    counts ``lengths``, all comparable with the probe's), each measure below its cutoff exact."""
    n_refs, n_lags = len(references), 2 * max_lag + 1
    padded, views, comparable = _grid(y, references, lengths, max_lag)
    best = _candidate_lags(y, padded, comparable)
    chosen = np.zeros(comparable.shape, dtype=bool)
    np.put_along_axis(chosen, best, True, axis=1)
    rows = np.flatnonzero((chosen & comparable).ravel())
    aligned, centred = np.full(n_refs, np.inf), np.full(n_refs, np.inf)
    if rows.size == 0:
        return aligned, centred
    # The candidate rows' cells, (rows, n * bands): reference levels facing the probe's.
    facing = views[rows // n_lags, rows % n_lags]
    # Active: a reference level above _ACTIVE_INT, or any real one (not the padding, which lies
    # below every level) facing a probe level above it. One comparison with a per-cell limit.
    active = facing > _active_limit(y)
    # Coarse levels lie in 0..147 (the padding at -1), so the differences fit int16 many times.
    d = np.subtract(facing, y.reshape(-1), dtype=np.int16)

    def leading(k: int) -> np.ndarray:  # each reference's first k candidate rows, comparable
        lead = (np.arange(n_refs)[:, None] * n_lags + best[:, :k]).ravel()
        return np.unique(lead[comparable.ravel()[lead]])  # among ``rows``

    # Centred: by band at each reference's best lag, by frame at its first CENTRED_LAGS (gains
    # per frame move the profiles: a copy's own lag may come second); the smallest.
    by_band = leading(1)
    lead = np.concatenate([by_band, leading(CENTRED_LAGS)])
    at = np.searchsorted(rows, lead)
    found = _centred_spread(d[at], active[at], y.shape, len(by_band), cutoffs[1])
    np.minimum.at(centred, lead // n_lags, found)
    counts = active.view(np.uint8).sum(axis=1, dtype=np.int32)
    usable = counts >= MIN_ACTIVE_CELLS
    if usable.any():
        spread = np.full(n_refs * n_lags, np.inf)
        spread[rows[usable]] = _robust_spread(
            d[usable], active[usable], counts[usable], LEVELS_PER_LN, cutoffs[0]
        )
        aligned = spread.reshape(n_refs, n_lags).min(axis=1)
    return aligned, centred


def _robust_spread(
    values: np.ndarray,
    active: np.ndarray,
    counts: np.ndarray,
    per_ln: float,
    cutoff: float | None,
) -> np.ndarray:
    """The robust spread (median absolute deviation from the median) of each row's active
    ``values`` (int16, ``per_ln`` to a natural-log unit; ``counts`` of them, at least 1) ->
    (n_rows,) natural-log units (inf: not below ``cutoff``, when one is given)."""
    n_rows = len(values)
    top = int(np.max(np.abs(values), where=active, initial=0))
    # Each row's histogram of its active values: the medians below are read off cumulative
    # counts, exact for integers, without sorting. Row r's bins hold v = -top..top.
    n_bins = 2 * top + 1
    # Keys (row r, value v) -> r * n_bins + v + top: uint16 when they fit (half the bytes of
    # int32 to write and compress); int16 values wrap into place modulo 2^16, and only active
    # cells, whose keys are all below 2^16, are counted.
    narrow = n_rows * n_bins <= _UINT16_KEYS
    keys = values.view(np.uint16) if narrow else values.astype(np.int32)
    keys = keys + (np.arange(n_rows, dtype=keys.dtype) * keys.dtype.type(n_bins) + top)[:, None]
    histogram = np.bincount(keys[active], minlength=n_rows * n_bins)
    cumulative = np.cumsum(histogram.reshape(n_rows, n_bins), axis=1, dtype=np.int32)
    low, high = (counts - 1) // 2, counts // 2  # ranks of the two middle values
    centre2 = _kth(cumulative, low) + _kth(cumulative, high) - 2 * top  # 2 x the median
    # 4 x the spread = the two middle values of s = |2 v - centre2| <= 4 top. With a cutoff,
    # only values that can sum below 4 per_ln x cutoff are looked for; beyond, a row is "not
    # below".
    upper = 4 * top + 1 if cutoff is None else int(np.floor(4 * per_ln * cutoff)) + 1
    s_low, s_high = _spread_ranks(cumulative, centre2, (low, high), upper)
    mad4 = np.where(s_high < upper, s_low + s_high, np.inf)
    return mad4 / (4 * per_ln)


def _centred_spread(
    d: np.ndarray,
    active: np.ndarray,
    shape: tuple[int, int],
    n_band: int,
    cutoff: float | None,
) -> np.ndarray:
    """The robust spread of each row's active differences ``d`` (int16, the probe's cells of
    frames x bands ``shape`` in each row) after the median
    difference of each band (the first ``n_band`` rows: a gain per band cancels) or of each
    frame (the others: a gain per frame cancels) is removed, over the bands with
    MIN_BAND_CELLS active cells at least, or the frames with MIN_FRAME_CELLS -> (n_rows,)
    natural-log units (inf: fewer than MIN_ACTIVE_CELLS, or not below ``cutoff``, when one is
    given). A frame row with MIN_POLISHED_FRAMES such frames in such bands is *polished*: over
    those cells, each band's median is removed, then each frame's, and both gains cancel.

    In int16, exact: the differences are doubled before a median is taken off (twice a median
    of integers is an integer); numpy sorts the short rows of int16 fast."""
    n, bands = shape
    n_rows = len(d)
    active = active.reshape(n_rows, n, bands)
    # |d| <= 148 (levels 0..147, the padding at -1): 4 x d less two medians stays within
    # 2 x (2 x 296) x 2.
    d = d.reshape(n_rows, n, bands)
    banded = active & (active.sum(axis=1) >= MIN_BAND_CELLS)[:, None, :]
    framed = banded.sum(axis=2) >= MIN_FRAME_CELLS
    polished = framed.sum(axis=1) >= MIN_POLISHED_FRAMES
    polished[:n_band] = False
    frame = slice(n_band, None)
    plain = active[frame] & (active[frame].sum(axis=2) >= MIN_FRAME_CELLS)[:, :, None]
    active = banded  # by band; by frame, the frames with MIN_FRAME_CELLS (banded if polished)
    active[frame] = np.where(
        polished[frame, None, None], banded[frame] & framed[frame, :, None], plain
    )
    by_band = _masked_median2(np.moveaxis(d, 1, 2), np.moveaxis(active, 1, 2))
    by_band[frame][~polished[frame]] = 0  # not polished: no band step
    halves = 2 * d - by_band[:, None, :]
    quarters = 2 * halves
    quarters[frame] -= _masked_median2(halves[frame], active[frame])[:, :, None]
    quarters, active = quarters.reshape(n_rows, n * bands), active.reshape(n_rows, n * bands)
    counts = active.sum(axis=1)
    usable = counts >= MIN_ACTIVE_CELLS
    spread = np.full(n_rows, np.inf)
    if usable.any():
        spread[usable] = _robust_spread(
            quarters[usable], active[usable], counts[usable], 4 * LEVELS_PER_LN, cutoff
        )
    # Polishing removes more, so fresh takes come closer: it counts POLISH_MARGIN further.
    spread[polished] += POLISH_MARGIN
    return spread


def _masked_median2(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Twice the median over the last axis of the int16 ``values`` where ``mask`` holds (0 where
    none) -> int16, the sum of the two middle values."""
    ordered = np.sort(np.where(mask, values, np.int16(_NEVER)), axis=-1)
    ordered = ordered.reshape(-1, values.shape[-1])
    k = mask.sum(axis=-1).ravel()
    rows = np.arange(len(k))
    low, high = ordered[rows, np.maximum(k - 1, 0) // 2], ordered[rows, k // 2 - (k == 0)]
    return np.where(k > 0, low + high, 0).astype(np.int16).reshape(mask.shape[:-1])


def aligned_distance(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Smallest robust spread of ``a - b`` over frame lags -max_lag..max_lag (inf: not
    comparable, or lengths too different for a copy shifted or cropped by up to ``max_lag``
    frames at each end).

    a, b: fingerprints (n_a, 40) and (n_b, 40), compared coarse (20 bands). Natural-log units
    of band energy: over the cells active in either, the median absolute deviation of the
    difference at that lag.
    """
    return float(aligned_distances(b, [a], max_lag)[0])


def any_replay(
    probes: Sequence[np.ndarray], references: Sequence[Sequence[Reference | np.ndarray]]
) -> bool:
    """Whether any probe is a near-copy of any of its own ``references[i]`` (fingerprints or
    their :class:`Reference`s): by its changes (all probes at once, the cheaper test), or
    aligned at a lag, plainly or centred."""
    references = _prepared(references)
    if any((found < CHANGE_DISTANCE).any() for found in _change_distances(probes, references)):
        return True
    for probe, refs in zip(probes, references, strict=True):
        aligned, centred = _alignment(
            probe, refs, cutoff=ALIGNED_DISTANCE, centred_cutoff=CENTRED_DISTANCE
        )
        if (aligned < ALIGNED_DISTANCE).any() or (centred < CENTRED_DISTANCE).any():
            return True
    return False


def is_replay(probe: np.ndarray, references: Iterable[Reference | np.ndarray]) -> bool:
    """Whether ``probe`` is a near-copy of any of ``references`` (fingerprints or their
    :class:`Reference`s)."""
    return any_replay([probe], [list(references)])
