"""MAP adaptation of a background model's means to one speaker (Reynolds et al., 2000).

Only the means move; weights and variances stay the UBM's, so enrolment is one E-step
(milliseconds), never an EM refit.
"""

from __future__ import annotations

import numpy as np

from .gmm import posteriors


def sufficient_statistics(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Zeroth- and first-order Baum-Welch statistics of frames under the UBM.

    X (n_frames, n_dims) -> counts (n_components,) = sum_t gamma_tc and
    first (n_components, n_dims) = sum_t gamma_tc x_t.
    """
    gamma = posteriors(X, weights, means, variances)
    return gamma.sum(axis=0), gamma.T @ X


def map_adapt_means(
    ubm_means: np.ndarray, counts: np.ndarray, first: np.ndarray, relevance: float
) -> np.ndarray:
    """Adapted means mu_c' = alpha_c E_c[x] + (1 - alpha_c) mu_c with alpha_c = n_c / (n_c + r).

    ubm_means (n_components, n_dims), counts (n_components,), first (n_components, n_dims)
    -> (n_components, n_dims). Components that saw no data keep the UBM mean exactly.
    Since alpha_c E_c[x] = first_c / (n_c + r), no division by a zero count happens.
    """
    if relevance <= 0:
        raise ValueError(f"relevance factor must be > 0, got {relevance}")
    denom = (counts + relevance)[:, None]
    return first / denom + (relevance / denom) * ubm_means
