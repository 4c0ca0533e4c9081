"""Speaker scores: mean frame log-likelihood ratio of a speaker model against the UBM.

The speaker model shares the UBM's weights and variances, so only the top-C UBM components of
each frame are evaluated for the speaker (Reynolds et al., 2000): they carry almost all of the
frame's likelihood and the adapted model is close to the UBM elsewhere.

The UBM side of a set of frames (:class:`UbmFrames`) does not depend on the speaker, so it is
computed once for frames scored against many speaker models (the z-norm cohort at enrolment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gmm import logsumexp_rows, weighted_log_densities


def top_components(ubm_wld: np.ndarray, top_c: int) -> np.ndarray:
    """Indices of the top_c best-scoring UBM components per frame, best first.

    ubm_wld (n_frames, n_components) weighted log densities -> (n_frames, top_c). A few rounds
    of argmax (masking each winner) are several times faster than ``argpartition`` for the few
    components scored (5 of 128): on a few hundred frames its per-row cost dominated scoring.
    """
    n_frames, n_components = ubm_wld.shape
    top_c = min(top_c, n_components)
    if top_c > _ARGMAX_ROUNDS or not np.isfinite(ubm_wld).all():  # -inf could repeat a winner
        return np.argpartition(ubm_wld, n_components - top_c, axis=1)[:, -top_c:]
    work = ubm_wld.copy()
    rows = np.arange(n_frames)
    top = np.empty((n_frames, top_c), dtype=np.intp)
    for k in range(top_c):
        top[:, k] = best = work.argmax(axis=1)
        work[rows, best] = -np.inf
    return top


_ARGMAX_ROUNDS = 16  # beyond this many components per frame, argpartition


@dataclass(frozen=True)
class UbmFrames:
    """The speaker-independent part of scoring some frames against a UBM.

    X (n, n_dims) the frames, in the precision the speaker side is computed in (float32 for the
    z-norm cohort, as stored); top (n, top_c) component indices; ubm_wld (n, top_c) log w_c +
    log N(x | c) of those components; ubm_ll (n,) log p(x | UBM) over them.
    """

    X: np.ndarray
    top: np.ndarray
    ubm_wld: np.ndarray
    ubm_ll: np.ndarray


# Frames per block when many are scored at once (the z-norm cohort: ~10^4): the (frames x
# components) temporaries stay near a megabyte instead of tens of them per request thread.
BLOCK_FRAMES = 1024


def _blocks(n: int) -> list[slice]:
    return [slice(i, min(i + BLOCK_FRAMES, n)) for i in range(0, max(n, 1), BLOCK_FRAMES)]


def ubm_frames(
    X: np.ndarray, weights: np.ndarray, ubm_means: np.ndarray, variances: np.ndarray, top_c: int
) -> UbmFrames:
    """X (n_frames, n_dims) -> the UBM side of :func:`frame_llr`."""
    parts = []
    for rows in _blocks(X.shape[0]):
        ubm_wld = weighted_log_densities(X[rows], weights, ubm_means, variances)
        top = top_components(ubm_wld, top_c)
        wld = np.take_along_axis(ubm_wld, top, axis=1)
        parts.append((top, wld, logsumexp_rows(wld)))
    top, wld, ubm_ll = (np.concatenate(p) for p in zip(*parts, strict=True))
    return UbmFrames(X, top, wld, ubm_ll)


def speaker_frame_llr(
    frames: UbmFrames, ubm_means: np.ndarray, variances: np.ndarray, speaker_means: np.ndarray
) -> np.ndarray:
    """Per-frame LLR of a speaker model (sharing the UBM's weights and variances): -> (n,).

    Per component, log N(x | mu_s) - log N(x | mu_u) = x . (mu_s - mu_u) / var
    - (|mu_s|^2 - |mu_u|^2) / (2 var): the x^2 terms cancel, so the speaker side is the UBM's
    densities of the top components plus one dot product per frame and top component (top_c
    of them, not all C: 4x faster than a full (n, d) x (d, C) product for the z-norm cohort).
    """
    shift = (speaker_means - ubm_means) / variances
    offset = 0.5 * np.sum(shift * (speaker_means + ubm_means), axis=1)
    # In the frames' precision: float32 frames (the z-norm cohort, stored as float32) halve the
    # bytes gathered and multiplied; the sums below are float64 again.
    shift_x = shift.astype(frames.X.dtype, copy=False)
    cross = np.concatenate(
        [
            np.einsum("nd,nkd->nk", frames.X[rows], shift_x[frames.top[rows]])
            for rows in _blocks(frames.X.shape[0])
        ]
    )
    spk = frames.ubm_wld + cross - offset[frames.top]
    return logsumexp_rows(spk) - frames.ubm_ll


def frame_llr(
    X: np.ndarray,
    weights: np.ndarray,
    ubm_means: np.ndarray,
    variances: np.ndarray,
    speaker_means: np.ndarray,
    top_c: int,
) -> np.ndarray:
    """Per-frame log p(x | speaker) - log p(x | UBM), both over the UBM's top_c components.

    X (n_frames, n_dims); weights (n_components,); ubm_means, variances, speaker_means
    (n_components, n_dims) -> (n_frames,).
    """
    frames = ubm_frames(X, weights, ubm_means, variances, top_c)
    return speaker_frame_llr(frames, ubm_means, variances, speaker_means)


def mean_llr(
    X: np.ndarray,
    weights: np.ndarray,
    ubm_means: np.ndarray,
    variances: np.ndarray,
    speaker_means: np.ndarray,
    top_c: int,
) -> float:
    """Average frame LLR over all frames of an attempt: (n_frames, n_dims) -> float."""
    if X.shape[0] == 0:
        raise ValueError("no speech frames to score")
    return float(np.mean(frame_llr(X, weights, ubm_means, variances, speaker_means, top_c)))


def segment_means(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean of consecutive segments: values (sum(lengths),), lengths (k,) all > 0 -> (k,)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.add.reduceat(values, starts) / lengths


@dataclass(frozen=True)
class CohortModels:
    """Impostor speaker models (adapted means sharing the UBM's weights and variances) in the
    form :func:`cohort_mean_llrs` scores them with: component-major, so the frames of one UBM
    component meet every model's shift of that component in one matrix product.

    scaled (n_components, n_dims, n_models): (mu_m - mu_u) / var; offsets (n_components,
    n_models): (|mu_m|^2 - |mu_u|^2) / (2 var) summed over dims (see :func:`speaker_frame_llr`).
    """

    scaled: np.ndarray
    offsets: np.ndarray

    @property
    def n_models(self) -> int:
        return int(self.scaled.shape[2])


def cohort_models(ubm_means: np.ndarray, variances: np.ndarray, shifts: np.ndarray) -> CohortModels:
    """shifts (n_models, n_components, n_dims): each model's means minus the UBM's."""
    scaled = shifts / variances
    offsets = 0.5 * np.sum(scaled * (shifts + 2.0 * ubm_means), axis=2)
    return CohortModels(
        np.ascontiguousarray(scaled.transpose(1, 2, 0)), np.ascontiguousarray(offsets.T)
    )


def cohort_mean_llrs(frames: UbmFrames, cohort: CohortModels) -> np.ndarray:
    """Mean frame LLR of the frames against every cohort model: -> (n_models,).

    ``mean(speaker_frame_llr(frames, ..., means_m))`` for each model m (to ~1e-8: the
    exponentials, n_frames x top_c x n_models of them, run in float32, 3x faster than float64 on
    AVX2), with the cross terms grouped by UBM component: an attempt's few hundred frames touch a
    hundred-odd components, so this is one small (pairs x dims) x (dims x models) product per
    component instead of a gather of (frames, top_c, models, dims) shifts.
    """
    n, top_c = frames.top.shape
    flat = frames.top.ravel()
    order = np.argsort(flat, kind="stable")
    comps = flat[order]
    bounds = np.flatnonzero(np.diff(comps)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [flat.size]])
    X = frames.X[order // top_c]  # the frame of each (frame, component) pair, component-sorted
    cross = np.empty((flat.size, cohort.n_models))
    for c, lo, hi in zip(comps[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        np.matmul(X[lo:hi], cohort.scaled[c], out=cross[lo:hi])
    cross -= cohort.offsets[comps]
    spk = np.empty_like(cross)
    spk[order] = cross
    spk = spk.reshape(n, top_c, -1)
    spk += frames.ubm_wld[:, :, None]
    peak = spk.max(axis=1)
    spk -= peak[:, None, :]
    ll = peak + np.log(np.exp(spk.astype(np.float32)).sum(axis=1, dtype=np.float32))
    return ll.mean(axis=0) - frames.ubm_ll.mean()
