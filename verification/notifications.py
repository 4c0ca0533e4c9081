"""E-mail to a user whose voice factor is under attack: when a streak of failed verifications
locks it (the first lock of the streak) and when it turns it off. No score, no address, nothing
an impostor could learn from: the owner learns that someone tried, and what to do.

Sent after the attempt commits, through Django's task framework (``TASKS``: immediate by
default, so in the request; a queue backend moves it out). A mail server that is down costs a
logged warning, never the verification's answer. ``VERIFICATION_ALERT_EMAILS=false``: none.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.tasks import task
from django.template.loader import render_to_string
from django.utils import timezone

logger = logging.getLogger(__name__)

LOCKED, DISABLED = "locked", "disabled"
SUBJECTS = {
    LOCKED: "SpeakerAuth: voice verification paused on your account",
    DISABLED: "SpeakerAuth: voice verification turned off on your account",
}


def voice_factor_alert_on_commit(*, user, kind: str, failures: int) -> None:
    """Queue the alert once the current transaction commits (none if it rolls back)."""
    if not settings.VERIFICATION_ALERT_EMAILS or not user.email:
        return
    at = timezone.now().isoformat()
    # robust: a task backend that fails to enqueue is logged, and the committed answer stands.
    transaction.on_commit(
        lambda: voice_factor_alert.enqueue(user.pk, kind, failures, at), robust=True
    )


@task()
def voice_factor_alert(user_id: int, kind: str, failures: int, at: str) -> bool:
    """-> whether the message went out."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return False
    context = {
        "user": user,
        "kind": kind,
        "failures": failures,
        "at": datetime.fromisoformat(at),
        "delay_seconds": settings.VERIFICATION_LOCKOUT_DELAY,
    }
    body = render_to_string("verification/email/voice_factor_alert.txt", context)
    try:
        send_mail(SUBJECTS[kind], body, None, [user.email])
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("voice-factor alert to user %s not sent: %s", user_id, type(exc).__name__)
        return False
    return True
