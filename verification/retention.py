"""Storage limitation: what is deleted once it has served its purpose. ``manage.py
apply_retention`` runs it; schedule it daily (Heroku Scheduler, cron, a Kubernetes CronJob).

- A voiceprint (enrollment utterances, speaker model, replay fingerprints) whose owner has had
  no voice activity (enrolled, verified) for ``VERIFICATION_VOICEPRINT_RETENTION_DAYS`` days
  (0: never). The account, its consent record and the audit log stay; the deletion is audited
  with ``"reason": "retention"``, and the user enrolls again to use the voice factor.
- Challenges that expired a day ago unanswered (an answered one is part of an audit row).
- Failed sign-ins older than the password lockout's cool-off (they no longer count).

The audit log is never pruned: it holds no features, and a gap would break its hash chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import lockout
from verification import selectors, services
from verification.models import Challenge

UNANSWERED_CHALLENGE_GRACE = timedelta(days=1)


@dataclass
class RetentionReport:
    dry_run: bool
    voiceprint_cutoff: datetime | None  # None: voiceprints are kept indefinitely
    voiceprints: list[int] = field(default_factory=list)  # user ids, deleted (or due)
    challenges: int = 0
    sign_in_failures: int = 0


def _inactive_voiceprint_owners(cutoff: datetime) -> list[int]:
    activity = selectors.voice_activity_last()
    return sorted(user_id for user_id, last in activity.items() if last < cutoff)


def retention_apply(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Delete what is due at ``now`` (default: the current time); ``dry_run`` counts only."""
    now = now or timezone.now()
    days = settings.VERIFICATION_VOICEPRINT_RETENTION_DAYS
    cutoff = now - timedelta(days=days) if days else None
    report = RetentionReport(dry_run=dry_run, voiceprint_cutoff=cutoff)
    if cutoff is not None:
        due = _inactive_voiceprint_owners(cutoff)
        if dry_run:
            report.voiceprints = due
        else:
            # One transaction per user, each re-checked under the user's lock.
            for user in get_user_model().objects.filter(pk__in=due).order_by("pk"):
                if services.voiceprint_expire(user=user, inactive_since=cutoff) is not None:
                    report.voiceprints.append(user.pk)
    stale = Challenge.objects.filter(
        expires_at__lt=now - UNANSWERED_CHALLENGE_GRACE, attempts__isnull=True
    )
    report.challenges = _count_or_delete(stale, dry_run)
    report.sign_in_failures = _count_or_delete(lockout.expired_failures(now=now), dry_run)
    return report


def _count_or_delete(rows, dry_run: bool) -> int:
    if dry_run:
        return rows.count()
    return rows.delete()[1].get(rows.model._meta.label, 0)
