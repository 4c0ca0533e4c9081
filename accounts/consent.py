"""Voice consent: the versioned consent text, what a user has agreed to, giving and withdrawing it.

Enrollment needs a standing consent to the *current* text version (DESIGN §6: explicit, versioned
consent before enrollment). Changing the wording means a new ``CONSENT_VERSION``; users then see
the new text and agree again before they can add enrollment recordings.

Kept here rather than in a ``services.py`` so the consent rules sit in one small module; the
functions follow the services/selectors conventions (keyword-only, atomic writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import VoiceConsent

CONSENT_VERSION = "2026-12-01"
CONSENT_TEXT = (
    "SpeakerAuth will keep a voiceprint of you: numbers computed in your browser from your "
    "recordings of spoken digits (the sound itself is never sent or stored), and a voice model "
    "built from them. It is used only to check that it is you when you verify by voice, as a "
    "second factor after your password. Every verification attempt is logged (time, decision, "
    "reason) for security audits. You can export your data or delete your voiceprint at any time "
    "from your account page; withdrawing this consent deletes your voiceprint."
)


@dataclass(frozen=True)
class ConsentStatus:
    version: str
    text: str
    given: bool
    given_at: datetime | None


def consent_status(*, user) -> ConsentStatus:
    """The current consent text and whether ``user`` has a standing consent to it."""
    row = voice_consent_current(user=user)
    return ConsentStatus(
        version=CONSENT_VERSION,
        text=CONSENT_TEXT,
        given=row is not None,
        given_at=row.given_at if row else None,
    )


def voice_consent_current(*, user) -> VoiceConsent | None:
    """The user's standing consent to the current text version, if any."""
    return VoiceConsent.objects.filter(
        user=user, text_version=CONSENT_VERSION, withdrawn_at__isnull=True
    ).first()


def has_current_consent(*, user) -> bool:
    return voice_consent_current(user=user) is not None


@transaction.atomic
def voice_consent_give(*, user, version: str) -> VoiceConsent:
    """Record consent to the current text. Idempotent: a standing consent is returned as is.

    ``version`` must be the current one: agreeing to a text the user was not shown is no consent.
    """
    if version != CONSENT_VERSION:
        raise ValueError(f"expected the current consent version {CONSENT_VERSION!r}")
    existing = voice_consent_current(user=user)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return VoiceConsent.objects.create(user=user, text_version=CONSENT_VERSION)
    except IntegrityError:
        # A parallel request recorded the same consent first (partial unique constraint).
        return VoiceConsent.objects.get(
            user=user, text_version=CONSENT_VERSION, withdrawn_at__isnull=True
        )


@transaction.atomic
def voice_consent_withdraw(*, user, actor=None, reason: str = "") -> int:
    """Withdraw every standing consent of ``user`` and delete their voiceprint with it
    (``actor`` and ``reason`` go into that deletion's audit event).

    Returns the number of consents withdrawn. The voiceprint goes in the same transaction: once
    consent is withdrawn, there is no lawful basis to keep it.
    """
    from verification import services as verification_services  # verification depends on us

    withdrawn = VoiceConsent.objects.filter(user=user, withdrawn_at__isnull=True).update(
        withdrawn_at=timezone.now()
    )
    verification_services.voiceprint_delete(user=user, actor=actor, reason=reason)
    return withdrawn
