"""Reads behind the staff dashboard: attempts per day, score distributions, error rates estimated
from staff labels. Plain dicts and lists, ready for ``json_script`` (the page's charts)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from verification import selectors
from verification.engine import metrics
from verification.models import AttemptLabel, Decision, VerificationAttempt

HISTOGRAM_BINS = 30


def attempts_per_day(days: int = 30) -> dict:
    """{"days": [iso dates], "accept": [counts], "reject": [counts]} for the last ``days``."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = (
        VerificationAttempt.objects.filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day", "decision")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {(r["day"], r["decision"]): r["n"] for r in rows}
    dates = [first + timedelta(days=i) for i in range(days)]
    return {
        "days": [d.isoformat() for d in dates],
        "accept": [counts.get((d, Decision.ACCEPT), 0) for d in dates],
        "reject": [counts.get((d, Decision.REJECT), 0) for d in dates],
    }


def _histograms(groups: dict[str, list[float]]) -> dict:
    """Histograms of several score groups over shared bins: {"edges", "<group>": counts}."""
    values = [v for scores in groups.values() for v in scores]
    if not values:
        return {"edges": [], **{name: [] for name in groups}}
    edges = np.histogram_bin_edges(values, bins=HISTOGRAM_BINS)
    out = {"edges": [round(float(e), 4) for e in edges]}
    for name, scores in groups.items():
        out[name] = np.histogram(scores, bins=edges)[0].tolist()
    return out


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(100 * rate, 1)


def error_rates(genuine: list[float], impostor: list[float], threshold: float | None) -> dict:
    """FAR/FRR at the threshold in force, EER and the FAR/FRR curves, from labelled attempts.
    None where there is not at least one labelled attempt of each kind."""
    if not genuine or not impostor:
        return {"eer": None, "eer_threshold": None, "far": None, "frr": None, "curve": None}
    eer, eer_threshold = metrics.eer_threshold(genuine, impostor)
    g, i = np.asarray(genuine), np.asarray(impostor)
    far = frr = None
    if threshold is not None:
        far = float(np.mean(i >= threshold))
        frr = float(np.mean(g < threshold))
    t, far_curve, frr_curve = metrics.det_curve(genuine, impostor)
    finite = np.isfinite(t)
    return {
        "far_pct": _pct(far),
        "frr_pct": _pct(frr),
        "eer_pct": _pct(eer),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "far": far,
        "frr": frr,
        "curve": {
            "thresholds": [round(float(x), 4) for x in t[finite]],
            "far": [round(float(x), 4) for x in far_curve[finite]],
            "frr": [round(float(x), 4) for x in frr_curve[finite]],
        },
    }


def observed_rates(labels) -> dict:
    """What the deployment actually did to labelled attempts (score, content check and every
    other reason together): impostors accepted (FAR) and genuine users rejected (FRR)."""
    rows = labels.values_list("truth", "attempt__decision")
    counts = {(t, d): 0 for t in AttemptLabel.Truth.values for d in Decision.values}
    for truth, decision in rows:
        counts[truth, decision] += 1
    impostors = counts["impostor", Decision.ACCEPT] + counts["impostor", Decision.REJECT]
    genuine = counts["genuine", Decision.ACCEPT] + counts["genuine", Decision.REJECT]
    far = counts["impostor", Decision.ACCEPT] / impostors if impostors else None
    frr = counts["genuine", Decision.REJECT] / genuine if genuine else None
    return {
        "far": far,
        "frr": frr,
        "far_pct": _pct(far),
        "frr_pct": _pct(frr),
        "impostor_trials": impostors,
        "genuine_trials": genuine,
    }


def dashboard_data(days: int = 14) -> dict:
    ubm = selectors.background_model_active()
    threshold = float(ubm.threshold) if ubm else None
    scored = VerificationAttempt.objects.filter(score__isnull=False)
    if ubm is not None:
        # Scores of different background models are on different scales (and thresholds):
        # the distributions and error rates are those of the model in force.
        scored = scored.filter(background_model=ubm)
    accepted = list(scored.filter(decision=Decision.ACCEPT).values_list("score", flat=True))
    rejected = list(scored.filter(decision=Decision.REJECT).values_list("score", flat=True))
    labelled = AttemptLabel.objects.filter(attempt__in=scored)
    genuine = list(
        labelled.filter(truth=AttemptLabel.Truth.GENUINE).values_list("attempt__score", flat=True)
    )
    impostor = list(
        labelled.filter(truth=AttemptLabel.Truth.IMPOSTOR).values_list("attempt__score", flat=True)
    )
    judged = AttemptLabel.objects.all()
    if ubm is not None:
        judged = judged.filter(attempt__background_model=ubm)
    return {
        "threshold": threshold,
        "ubm_version": ubm.version if ubm else None,
        "observed": observed_rates(judged),
        "per_day": attempts_per_day(days),
        "decisions": _histograms({"accepted": accepted, "rejected": rejected}),
        "labels": _histograms({"genuine": genuine, "impostor": impostor}),
        "rates": error_rates(genuine, impostor, threshold),
        "counts": {
            "attempts": VerificationAttempt.objects.count(),
            "scored": len(accepted) + len(rejected),
            "genuine_labels": len(genuine),
            "impostor_labels": len(impostor),
        },
    }
