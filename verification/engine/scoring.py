"""Speaker scores: mean frame log-likelihood ratio of a speaker model against the UBM.

The speaker model shares the UBM's weights and variances, so only the top-C UBM components of
each frame are evaluated for the speaker (Reynolds et al., 2000): they carry almost all of the
frame's likelihood and the adapted model is close to the UBM elsewhere.
"""

from __future__ import annotations

import numpy as np

from .gmm import LOG_2PI, logsumexp_rows, weighted_log_densities


def top_components(ubm_wld: np.ndarray, top_c: int) -> np.ndarray:
    """Indices of the top_c best-scoring UBM components per frame.

    ubm_wld (n_frames, n_components) weighted log densities -> (n_frames, top_c), unordered.
    """
    top_c = min(top_c, ubm_wld.shape[1])
    return np.argpartition(ubm_wld, ubm_wld.shape[1] - top_c, axis=1)[:, -top_c:]


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
    ubm_wld = weighted_log_densities(X, weights, ubm_means, variances)
    top = top_components(ubm_wld, top_c)
    ubm_top = np.take_along_axis(ubm_wld, top, axis=1)
    # Speaker densities only for the selected components: an (n, top_c, d) gather.
    mu = speaker_means[top]
    var = variances[top]
    diff = X[:, None, :] - mu
    spk_top = np.log(weights)[top] - 0.5 * (
        X.shape[1] * LOG_2PI + np.sum(np.log(var) + diff * diff / var, axis=2)
    )
    return logsumexp_rows(spk_top) - logsumexp_rows(ubm_top)


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
