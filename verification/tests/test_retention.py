"""Retention (``manage.py apply_retention``): voiceprints unused past the retention period are
deleted and audited, recent voice activity keeps one, and spent housekeeping rows go."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone

from verification import retention, services
from verification.models import (
    AuditEvent,
    Challenge,
    EnrollmentUtterance,
    ReplayFingerprint,
    SpeakerModel,
    VerificationAttempt,
)
from verification.tests.conftest import enroll
from verification.tests.factories import GENUINE, IMPOSTOR, answer_challenge

DIGITS = "52718"
CLIENT = services.ClientInfo(ip="192.0.2.80", user_agent="retention-test")
DAYS = 30


@pytest.fixture(autouse=True)
def _retention_days(settings):
    settings.VERIFICATION_VOICEPRINT_RETENTION_DAYS = DAYS


def _verify(user, corpus, speaker: str = GENUINE) -> Challenge:
    return answer_challenge(user, corpus, DIGITS, client=CLIENT, speaker=speaker)


def _age(user, days: int) -> None:
    """Move the user's voice data ``days`` into the past (attempts are append-only: they keep
    their time, so a user aged this way must have none)."""
    then = timezone.now() - timedelta(days=days)
    EnrollmentUtterance.objects.filter(user=user).update(created_at=then)
    SpeakerModel.objects.filter(user=user).update(trained_at=then)
    ReplayFingerprint.objects.filter(user=user).update(created_at=then)


def _holds_voice_data(user) -> bool:
    return any(
        model.objects.filter(user=user).exists()
        for model in (EnrollmentUtterance, SpeakerModel, ReplayFingerprint)
    )


def test_an_unused_voiceprint_is_deleted_and_audited(enrolled_alice, corpus):
    _verify(enrolled_alice, corpus)
    attempts_before = VerificationAttempt.objects.filter(user=enrolled_alice).count()

    report = retention.retention_apply(now=timezone.now() + timedelta(days=DAYS + 1))

    assert report.voiceprints == [enrolled_alice.pk]
    assert not _holds_voice_data(enrolled_alice)
    event = AuditEvent.objects.filter(user=enrolled_alice, kind="voiceprint_deleted").get()
    assert event.details["reason"] == "retention"
    assert event.actor is None
    # The account, its attempts and an intact audit chain stay.
    enrolled_alice.refresh_from_db()
    assert VerificationAttempt.objects.filter(user=enrolled_alice).count() == attempts_before
    call_command("verify_audit", stdout=StringIO())


def test_recent_voice_activity_keeps_the_voiceprint(alice, bob, ubm, corpus):
    """Both enrolled 40 days ago; bob verified today, alice never since."""
    enroll(alice, corpus)
    enroll(bob, corpus, speaker=IMPOSTOR)
    _age(alice, 40)
    _age(bob, 40)
    _verify(bob, corpus, speaker=IMPOSTOR)
    ReplayFingerprint.objects.filter(user=bob).update(created_at=timezone.now() - timedelta(40))

    report = retention.retention_apply()

    assert report.voiceprints == [alice.pk]
    assert not _holds_voice_data(alice)
    assert SpeakerModel.objects.filter(user=bob).exists()


def test_enrolling_within_the_period_keeps_the_voiceprint(enrolled_alice):
    _age(enrolled_alice, DAYS - 1)

    assert retention.retention_apply().voiceprints == []
    assert SpeakerModel.objects.filter(user=enrolled_alice).exists()


def test_activity_racing_the_run_keeps_the_voiceprint(enrolled_alice, monkeypatch):
    """Chosen as unused, but active by the time the run takes the user's lock."""
    monkeypatch.setattr(
        retention, "_inactive_voiceprint_owners", lambda cutoff: [enrolled_alice.pk]
    )

    assert retention.retention_apply().voiceprints == []
    assert SpeakerModel.objects.filter(user=enrolled_alice).exists()
    assert not AuditEvent.objects.filter(kind="voiceprint_deleted").exists()


def test_dry_run_counts_and_deletes_nothing(enrolled_alice):
    _age(enrolled_alice, DAYS + 1)
    out = StringIO()

    call_command("apply_retention", "--dry-run", stdout=out)

    assert "voiceprints due (no voice activity since " in out.getvalue()
    assert "): 1\n" in out.getvalue()
    assert SpeakerModel.objects.filter(user=enrolled_alice).exists()
    assert EnrollmentUtterance.objects.filter(user=enrolled_alice).exists()


def test_zero_days_keeps_voiceprints_indefinitely(enrolled_alice, settings):
    settings.VERIFICATION_VOICEPRINT_RETENTION_DAYS = 0
    _age(enrolled_alice, 10_000)
    out = StringIO()

    call_command("apply_retention", stdout=out)

    assert "voiceprints: kept indefinitely" in out.getvalue()
    assert SpeakerModel.objects.filter(user=enrolled_alice).exists()


def test_unanswered_challenges_go_a_day_after_expiry(enrolled_alice, corpus):
    answered = _verify(enrolled_alice, corpus)
    unanswered = services.challenge_create(user=enrolled_alice)
    two_days_on = unanswered.expires_at + timedelta(days=2)
    fresh = services.challenge_create(user=enrolled_alice)
    Challenge.objects.filter(pk=fresh.pk).update(expires_at=two_days_on)

    report = retention.retention_apply(now=two_days_on)

    assert report.challenges == 1
    assert not Challenge.objects.filter(pk=unanswered.pk).exists()
    # The audit row's challenge, and one not yet a day past expiry, stay.
    assert Challenge.objects.filter(pk__in=[answered.pk, fresh.pk]).count() == 2


def test_expired_failed_sign_ins_go(db, settings):
    def failure(username: str, minutes_ago: int) -> AccessAttempt:
        row = AccessAttempt.objects.create(
            username=username,
            ip_address="198.51.100.9",
            user_agent="curl/8",
            http_accept="*/*",
            path_info="/api/v1/auth/token/",
            get_data="",
            post_data="",
            failures_since_start=3,
        )
        then = timezone.now() - timedelta(minutes=minutes_ago)
        AccessAttempt.objects.filter(pk=row.pk).update(attempt_time=then)
        return row

    old = failure("mallory", settings.AXES_COOLOFF_TIME.total_seconds() // 60 + 1)
    counting = failure("trent", 1)
    out = StringIO()

    call_command("apply_retention", stdout=out)

    assert "expired failed sign-ins deleted: 1" in out.getvalue()
    assert list(AccessAttempt.objects.values_list("pk", flat=True)) == [counting.pk]
    assert not AccessAttempt.objects.filter(pk=old.pk).exists()
