"""Diagonal-covariance Gaussian mixtures: frame log-likelihoods, posteriors and UBM training.

Pure numpy (plus scikit-learn's EM for training). Shapes follow scikit-learn:
``X`` is ``(n_frames, n_dims)``, ``weights`` ``(n_components,)``, ``means`` and ``variances``
``(n_components, n_dims)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
_CHUNK = 10  # EM iterations between progress lines


def component_log_densities(X: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Log N(x_t | mu_c, diag(var_c)) for every frame and component.

    X (n_frames, n_dims), means (n_components, n_dims), variances (n_components, n_dims)
    -> (n_frames, n_components). One matrix product of [x^2, x] with [-1/(2 var), mu/var]
    instead of an (n, c, d) temporary.
    """
    precisions = 1.0 / variances
    const = -0.5 * (
        X.shape[1] * LOG_2PI
        + np.sum(np.log(variances), axis=1)
        + np.sum(means * means * precisions, axis=1)
    )
    coefficients = np.concatenate([-0.5 * precisions, means * precisions], axis=1)
    densities = np.concatenate([X * X, X], axis=1) @ coefficients.T
    densities += const
    return densities


def weighted_log_densities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """log w_c + log N(x_t | c): (n_frames, n_dims) -> (n_frames, n_components)."""
    densities = component_log_densities(X, means, variances)
    densities += np.log(weights)
    return densities


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """Stable log(sum(exp(a), axis=1)): (n, k) -> (n,)."""
    top = np.max(a, axis=1, keepdims=True)
    return (top + np.log(np.sum(np.exp(a - top), axis=1, keepdims=True)))[:, 0]


def log_likelihood(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Per-frame mixture log-likelihood log p(x_t): (n_frames, n_dims) -> (n_frames,).

    Equals ``GaussianMixture(covariance_type="diag").score_samples(X)`` for the same parameters.
    """
    return logsumexp_rows(weighted_log_densities(X, weights, means, variances))


def posteriors(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Responsibilities gamma_tc = P(c | x_t): (n_frames, n_dims) -> (n_frames, n_components)."""
    wld = weighted_log_densities(X, weights, means, variances)
    return np.exp(wld - logsumexp_rows(wld)[:, None])


def train_gmm(
    X: np.ndarray,
    n_components: int,
    *,
    seed: int = 0,
    max_iter: int = 200,
    tol: float = 1e-3,
    reg_covar: float = 1e-3,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a diagonal GMM by EM (k-means initialisation), e.g. a universal background model.

    X (n_frames, n_dims) -> weights (n_components,), means (n_components, n_dims),
    variances (n_components, n_dims), all float64. ``reg_covar`` floors every variance so a
    component that captured near-identical frames cannot dominate the likelihood. Deterministic
    for a given ``seed`` and input.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < n_components:
        raise ValueError(
            f"need a (n_frames, n_dims) array with at least {n_components} frames, got {X.shape}"
        )
    gmm = GaussianMixture(
        n_components=n_components,
        covariance_type="diag",
        init_params="kmeans",
        max_iter=_CHUNK,
        tol=tol,
        reg_covar=reg_covar,
        random_state=seed,
        warm_start=True,
    )
    report = progress or (lambda message: None)
    report(f"EM: {X.shape[0]} frames x {X.shape[1]} dims, {n_components} components")
    # warm_start continues EM exactly where the previous chunk stopped (same lower bound, same
    # convergence test), so chunking only adds progress lines, not different numbers.
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while True:
            gmm.max_iter = min(_CHUNK, max_iter - done)
            gmm.fit(X)
            done += gmm.n_iter_
            report(f"EM iteration {done}: mean log-likelihood bound {gmm.lower_bound_:.4f}")
            if gmm.converged_ or done >= max_iter:
                break
    report(f"EM {'converged' if gmm.converged_ else 'stopped at max_iter'} after {done} iterations")
    return (
        np.asarray(gmm.weights_, dtype=np.float64),
        np.asarray(gmm.means_, dtype=np.float64),
        np.asarray(gmm.covariances_, dtype=np.float64),
    )
