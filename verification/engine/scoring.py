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

from .gmm import LOG_2PI, logsumexp_rows, weighted_log_densities


def top_components(ubm_wld: np.ndarray, top_c: int) -> np.ndarray:
    """Indices of the top_c best-scoring UBM components per frame.

    ubm_wld (n_frames, n_components) weighted log densities -> (n_frames, top_c), unordered.
    """
    top_c = min(top_c, ubm_wld.shape[1])
    return np.argpartition(ubm_wld, ubm_wld.shape[1] - top_c, axis=1)[:, -top_c:]


@dataclass(frozen=True)
class UbmFrames:
    """The speaker-independent part of scoring some frames against a UBM.

    top (n, top_c) component indices; ubm_ll (n,) log p(x | UBM) over them; quad (n, top_c)
    sum_d x_d^2 / var_cd of the selected components.
    """

    X: np.ndarray
    top: np.ndarray
    ubm_ll: np.ndarray
    quad: np.ndarray


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
        x = X[rows]
        squares = (x * x) @ (1.0 / variances).T  # sum_d x_d^2 / var_cd, shared by both sides
        ubm_wld = weighted_log_densities(x, weights, ubm_means, variances, squares=squares)
        top = top_components(ubm_wld, top_c)
        ubm_ll = logsumexp_rows(np.take_along_axis(ubm_wld, top, axis=1))
        parts.append((top, ubm_ll, np.take_along_axis(squares, top, axis=1)))
    top, ubm_ll, quad = (np.concatenate(p) for p in zip(*parts, strict=True))
    return UbmFrames(X, top, ubm_ll, quad)


def speaker_frame_llr(
    frames: UbmFrames, weights: np.ndarray, variances: np.ndarray, speaker_means: np.ndarray
) -> np.ndarray:
    """Per-frame LLR of a speaker model (sharing the UBM's weights and variances): -> (n,).

    log N(x | mu, var) = const_c - 0.5 * (sum x^2/var - 2 x.(mu/var)); the cross term is one
    (n, d) x (d, C) product, cheaper than gathering (n, top_c, d) differences.
    """
    precisions = 1.0 / variances
    const = np.log(weights) - 0.5 * (
        variances.shape[1] * LOG_2PI
        + np.sum(np.log(variances), axis=1)
        + np.sum(speaker_means * speaker_means * precisions, axis=1)
    )
    scaled = (speaker_means * precisions).T
    cross = np.concatenate(
        [
            np.take_along_axis(frames.X[rows] @ scaled, frames.top[rows], axis=1)
            for rows in _blocks(frames.X.shape[0])
        ]
    )
    spk = const[frames.top] - 0.5 * (frames.quad - 2.0 * cross)
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
    return speaker_frame_llr(frames, weights, variances, speaker_means)


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
