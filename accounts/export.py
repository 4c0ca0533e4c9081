"""'Export my data' (GDPR art. 15 and 20): every personal record of one user, as plain JSON values.

A selector: reads only. Secrets are left out on purpose, since an export file travels: the
password hash, API token keys, session keys and challenge nonces (which are credentials while
open). Scores stay out too: the claimant never sees them (DESIGN §5, they enable hill-climbing).
Everything else the database holds about the user is here, including the enrollment features
themselves and the replay fingerprints of recent attempts.
"""

from __future__ import annotations

import base64
from typing import Any

from axes.models import AccessAttempt
from django.utils import timezone

from accounts.models import VoiceConsent
from verification.models import (
    AttemptLabel,
    AuditEvent,
    Challenge,
    EnrollmentUtterance,
    ReplayFingerprint,
    SpeakerModel,
    VerificationAttempt,
    VerificationLockout,
)

EXPORT_FORMAT = "speakerauth-export-v1"


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _utterance(row: EnrollmentUtterance) -> dict[str, Any]:
    utt = row.to_utterance()
    return {
        "id": row.pk,
        "purpose": row.purpose,
        "digit": row.digit,
        "feature_version": row.feature_version,
        "frame_count": row.frame_count,
        "mean_rms": row.mean_rms,
        "speech_fraction": row.speech_fraction,
        "created_at": _iso(row.created_at),
        "mel_bands": utt.mel_bands.tolist(),
        "rms": utt.rms.tolist(),
    }


def _attempt(row: VerificationAttempt) -> dict[str, Any]:
    return {
        "id": row.pk,
        "created_at": _iso(row.created_at),
        "decision": row.decision,
        "reason": row.reason,
        "challenge": row.challenge_id,
        "frame_count": row.frame_count,
        "speaker_model_version": row.speaker_model_version,
        "ubm_version": row.ubm_version,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "latency_ms": row.latency_ms,
    }


def personal_data_export(*, user) -> dict[str, Any]:
    """All records of ``user``: account, consents, enrollment utterances (metadata and
    features), speaker model metadata, challenges, attempts, lockout state, replay
    fingerprints, audit events about them, staff labels of their attempts, and failed sign-ins
    with their username that the password lockout still counts."""
    speaker = SpeakerModel.objects.defer("blob").select_related("background_model")
    speaker = speaker.filter(user=user).first()
    lockout = VerificationLockout.objects.filter(user=user).first()
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(timezone.now()),
        "account": {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "is_staff": user.is_staff,
        },
        "consents": [
            {
                "text_version": c.text_version,
                "given_at": _iso(c.given_at),
                "withdrawn_at": _iso(c.withdrawn_at),
            }
            for c in VoiceConsent.objects.filter(user=user).order_by("given_at", "id")
        ],
        "enrollment_utterances": [
            _utterance(row)
            for row in EnrollmentUtterance.objects.filter(user=user).order_by("created_at", "id")
        ],
        "speaker_model": None
        if speaker is None
        else {
            "version": speaker.version,
            "ubm_version": speaker.background_model.version,
            "utterance_count": speaker.utterance_count,
            "trained_at": _iso(speaker.trained_at),
            "created_at": _iso(speaker.created_at),
        },
        "challenges": [
            {
                "id": c.pk,
                "digits": c.digit_list,
                "session_bound": bool(c.session_key),
                "created_at": _iso(c.created_at),
                "expires_at": _iso(c.expires_at),
                "used_at": _iso(c.used_at),
            }
            for c in Challenge.objects.filter(user=user).order_by("created_at", "id")
        ],
        "verification_attempts": [
            _attempt(row)
            for row in VerificationAttempt.objects.filter(user=user).order_by("created_at", "id")
        ],
        "lockout": None
        if lockout is None
        else {
            "consecutive_failures": lockout.consecutive_failures,
            "total_failures": lockout.total_failures,
            "locked_until": _iso(lockout.locked_until),
            "disabled_at": _iso(lockout.disabled_at),
        },
        "replay_fingerprints": [
            {
                "digit": f.digit,
                "created_at": _iso(f.created_at),
                "fingerprint_uint8_b64": base64.b64encode(bytes(f.fingerprint)).decode("ascii"),
            }
            for f in ReplayFingerprint.objects.filter(user=user).order_by("created_at", "id")
        ],
        "audit_events": [
            {
                "kind": e.kind,
                "created_at": _iso(e.created_at),
                "by_staff": e.actor_id is not None and e.actor_id != user.pk,
                "details": e.details,
            }
            for e in AuditEvent.objects.filter(user=user).order_by("created_at", "id")
        ],
        "failed_sign_ins": [
            {
                "ip_address": a.ip_address,
                "user_agent": a.user_agent,
                "failures": a.failures_since_start,
                "last_at": _iso(a.attempt_time),
            }
            for a in AccessAttempt.objects.filter(username=user.username).order_by("id")
        ],
        "attempt_labels": [
            {
                "attempt": label.attempt_id,
                "truth": label.truth,
                "labelled_at": _iso(label.created_at),
            }
            for label in AttemptLabel.objects.filter(attempt__user=user).order_by("created_at")
        ],
    }
