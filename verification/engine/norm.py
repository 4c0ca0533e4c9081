"""Score normalisation against an impostor cohort shipped with the background model.

Z-norm: at enrolment the new speaker model scores a fixed set of cohort attempts (impostor speech
from the UBM's training speakers); verification scores are then expressed in standard deviations
above that impostor distribution, so one threshold fits speakers whose raw LLRs sit at different
levels, and transfers across microphones and corpora better than a raw LLR threshold.
"""

from __future__ import annotations

import numpy as np


def split_segments(frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """(n_total, n_dims) frames + (k,) lengths -> k arrays (lengths[i], n_dims)."""
    return np.split(frames, np.cumsum(lengths)[:-1])


def znorm_statistics(cohort_scores: np.ndarray, min_std: float = 1e-3) -> tuple[float, float]:
    """Mean and (floored) standard deviation of cohort scores: (k,) -> (mu, sigma)."""
    cohort_scores = np.asarray(cohort_scores, dtype=np.float64)
    return float(np.mean(cohort_scores)), float(max(np.std(cohort_scores), min_std))


def znormalise(score: float, mean: float, std: float) -> float:
    """(score - mean) / std."""
    return (score - mean) / std
