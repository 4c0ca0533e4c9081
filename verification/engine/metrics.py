"""Verification error metrics on pooled trial scores (higher = more likely the claimed speaker).

Standalone functions in the spirit of SpeechBrain's ``metric_stats``; a trial is accepted when
``score >= threshold``. Rates are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np


def det_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at every distinct threshold.

    genuine (n_g,), impostor (n_i,) scores -> thresholds (k,), far (k,), frr (k,), thresholds
    ascending; the last threshold (+inf) rejects everything.

    >>> t, far, frr = det_curve([2.0, 3.0], [0.0, 1.0])
    >>> [float(x) for x in far], [float(x) for x in frr]
    ([1.0, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 1.0])
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    thresholds = np.concatenate([np.unique(np.concatenate([genuine, impostor])), [np.inf]])
    g = np.sort(genuine)
    i = np.sort(impostor)
    frr = np.searchsorted(g, thresholds, side="left") / g.size  # genuine < t are rejected
    far = 1.0 - np.searchsorted(i, thresholds, side="left") / i.size  # impostor >= t accepted
    return thresholds, far, frr


def eer(genuine, impostor) -> float:
    """Equal error rate: where the FAR and FRR curves cross (linearly interpolated).

    >>> eer([1.0, 2.0, 3.0], [-1.0, 0.0])
    0.0
    >>> eer([0.0, 1.0], [0.5, -1.0])
    0.5
    """
    return eer_threshold(genuine, impostor)[0]


def eer_threshold(genuine, impostor) -> tuple[float, float]:
    """(EER, a threshold achieving it): the crossing point of the DET curve.

    >>> eer_threshold([1.0, 2.0], [0.0])
    (0.0, 1.0)
    """
    t, far, frr = det_curve(genuine, impostor)
    diff = far - frr  # decreasing from 1 to -1
    k = int(np.argmax(diff <= 0))
    if diff[k] == 0 or k == 0:
        return float(far[k]), float(t[k])
    # FAR and FRR are step functions; the crossing lies between thresholds k-1 and k.
    w = diff[k - 1] / (diff[k - 1] - diff[k])
    rate = float(far[k - 1] + w * (far[k] - far[k - 1]))
    lo, hi = t[k - 1], t[k]
    threshold = float(lo + w * (hi - lo)) if np.isfinite(hi) else float(lo)
    return rate, threshold


def eer_interval(
    genuine,
    impostor,
    genuine_speakers,
    impostor_speakers,
    *,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the EER when the corpus' speakers are drawn again.

    genuine (n_g,), impostor (n_i,) scores and the claimed speaker of each trial. Trials of one
    speaker share a model and a voice, so they are not independent: resampling trials would
    understate the uncertainty of a corpus with few speakers. Each of ``n_boot`` replicates draws
    as many speakers as there are, with replacement, and pools all their genuine and impostor
    trials (a cluster bootstrap); replicates without both kinds are skipped.

    >>> eer_interval([2.0, 3.0], [0.0, 1.0], ["a", "b"], ["a", "b"], rng=np.random.default_rng(0))
    (0.0, 0.0)
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    genuine_speakers = np.asarray(genuine_speakers)
    impostor_speakers = np.asarray(impostor_speakers)
    speakers = np.unique(np.concatenate([genuine_speakers, impostor_speakers]))
    g_of = [np.flatnonzero(genuine_speakers == s) for s in speakers]
    i_of = [np.flatnonzero(impostor_speakers == s) for s in speakers]
    rates = []
    for _ in range(n_boot):
        pick = rng.integers(speakers.size, size=speakers.size)
        g = genuine[np.concatenate([g_of[p] for p in pick])]
        i = impostor[np.concatenate([i_of[p] for p in pick])]
        if g.size and i.size:
            rates.append(eer(g, i))
    if not rates:
        raise ValueError("no replicate held both genuine and impostor trials")
    tail = (1.0 - level) / 2
    low, high = np.quantile(rates, [tail, 1.0 - tail])
    return float(low), float(high)


def min_dcf(
    genuine, impostor, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Minimum detection cost (NIST SRE), normalised by the cost of the best trivial system.

    >>> min_dcf([1.0, 2.0], [0.0, 0.5])
    0.0
    >>> round(min_dcf([0.0, 2.0], [1.0, -1.0]), 3)
    0.5
    """
    _, far, frr = det_curve(genuine, impostor)
    cost = c_miss * p_target * frr + c_fa * (1.0 - p_target) * far
    return float(np.min(cost) / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def frr_at_far(genuine, impostor, far_target: float = 0.01) -> float:
    """Lowest FRR among thresholds whose FAR <= far_target.

    >>> frr_at_far([1.0, 2.0, 3.0, 4.0], [0.0, 2.5], far_target=0.0)
    0.5
    """
    _, far, frr = det_curve(genuine, impostor)
    return float(np.min(frr[far <= far_target]))


def rates_at_threshold(genuine, impostor, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) of the decision rule score >= threshold.

    >>> rates_at_threshold([1.0, 2.0], [0.0, 1.5], 1.2)
    (0.5, 0.5)
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    return float(np.mean(impostor >= threshold)), float(np.mean(genuine < threshold))


def det_points(genuine, impostor) -> tuple[np.ndarray, np.ndarray]:
    """DET curve points on normal-deviate axes: (probit(FAR), probit(FRR)), rates clipped to
    [1e-4, 1 - 1e-4] so that zero rates stay plottable.

    >>> x, y = det_points([1.0, 2.0], [0.0, 1.5])
    >>> x.shape == y.shape
    True
    """
    from scipy.stats import norm

    _, far, frr = det_curve(genuine, impostor)
    clip = 1e-4
    return norm.ppf(np.clip(far, clip, 1 - clip)), norm.ppf(np.clip(frr, clip, 1 - clip))
