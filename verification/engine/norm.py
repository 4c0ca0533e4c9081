"""Score normalisation against an impostor cohort shipped with the background model.

Z-norm: at enrolment the new speaker model scores a fixed set of cohort attempts (impostor speech
from the UBM's training speakers); verification scores are then expressed in standard deviations
above that impostor distribution, so one threshold fits speakers whose raw LLRs sit at different
levels, and transfers across microphones and corpora better than a raw LLR threshold.

Adaptive symmetric normalisation (AS-norm; Cumani et al., 2011; Matejka et al., 2017) adds the
test side: the attempt also scores a set of cohort speaker models, and the score is the mean of
the two normalised scores, each side's statistics taken over its ``top_n`` highest cohort scores
only, the impostors closest to this speaker and to this attempt.
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


def top_statistics(
    cohort_scores: np.ndarray, top_n: int, min_std: float = 1e-3
) -> tuple[float, float]:
    """:func:`znorm_statistics` of the ``top_n`` highest cohort scores (all if fewer)."""
    cohort_scores = np.asarray(cohort_scores, dtype=np.float64)
    if 0 < top_n < cohort_scores.size:
        cohort_scores = np.partition(cohort_scores, cohort_scores.size - top_n)[-top_n:]
    return znorm_statistics(cohort_scores, min_std)


def symmetric_normalise(
    score: float, enrol: tuple[float, float], test: tuple[float, float]
) -> float:
    """Mean of the score normalised by the enrolment side's and by the test side's statistics."""
    return 0.5 * (znormalise(score, *enrol) + znormalise(score, *test))
