"""Every verification request writes exactly one audit row, whatever the outcome, in the same
transaction as the decision (issue 6, acceptance 1). Real features (fsdd), the real engine."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from verification import services
from verification.models import (
    AuditEvent,
    AuditEventKind,
    Challenge,
    Decision,
    Reason,
    VerificationAttempt,
    VerificationLockout,
)
from verification.tests.factories import GENUINE, IMPOSTOR, payload, prompt

SCORE = reverse("voiceprint-score")
CHALLENGES = reverse("challenge-list")
DIGITS = "31452"


def _challenge(client) -> str:
    nonce = client.post(CHALLENGES).json()["id"]
    prompt(nonce, DIGITS)
    return nonce


def _answer(corpus, nonce: str, speaker: str = GENUINE, digits: str = DIGITS) -> dict:
    return {"challenge": nonce, "utterances": [payload(u) for u in corpus.answer(speaker, digits)]}


def _one_row(client, body, **kw) -> tuple[int, VerificationAttempt]:
    """POST a score request; assert it added exactly one audit row; (status, row)."""
    before = VerificationAttempt.objects.count()
    response = client.post(SCORE, body, **kw) if kw else client.post(SCORE, body, format="json")
    assert VerificationAttempt.objects.count() == before + 1
    return response.status_code, VerificationAttempt.objects.order_by("-seq").first()


def test_accept_writes_one_row(alice_api, enrolled_alice, corpus):
    status, row = _one_row(alice_api, _answer(corpus, _challenge(alice_api)))
    assert (status, row.decision, row.reason) == (200, Decision.ACCEPT, Reason.ACCEPTED)
    assert row.score is not None


def test_impostor_reject_writes_one_row(alice_api, enrolled_alice, corpus):
    status, row = _one_row(alice_api, _answer(corpus, _challenge(alice_api), IMPOSTOR))
    assert (status, row.decision) == (200, Decision.REJECT)
    assert row.reason in {Reason.LOW_SCORE, Reason.WRONG_CONTENT}


def test_wrong_content_writes_one_row(alice_api, enrolled_alice, corpus):
    status, row = _one_row(alice_api, _answer(corpus, _challenge(alice_api), digits="3141"))
    assert (status, row.reason) == (200, Reason.WRONG_CONTENT)


def test_replayed_challenge_writes_one_row(alice_api, enrolled_alice, corpus):
    body = _answer(corpus, _challenge(alice_api))
    _one_row(alice_api, body)
    status, row = _one_row(alice_api, body)
    assert (status, row.reason) == (200, Reason.REPLAYED_CHALLENGE)


def test_expired_challenge_writes_one_row(alice_api, enrolled_alice, corpus):
    nonce = _challenge(alice_api)
    Challenge.objects.filter(nonce=nonce).update(expires_at=timezone.now())
    status, row = _one_row(alice_api, _answer(corpus, nonce))
    assert (status, row.reason) == (200, Reason.EXPIRED_CHALLENGE)


def test_unknown_challenge_writes_one_row(alice_api, enrolled_alice, corpus):
    status, row = _one_row(alice_api, _answer(corpus, secrets.token_urlsafe(32)))
    assert (status, row.reason, row.challenge) == (200, Reason.UNKNOWN_CHALLENGE, None)


def test_foreign_challenge_writes_one_row(alice_api, enrolled_alice, bob, corpus):
    foreign = Challenge.objects.create(
        user=bob,
        digits=DIGITS,
        nonce=secrets.token_urlsafe(32),
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    status, row = _one_row(alice_api, _answer(corpus, foreign.nonce))
    assert (status, row.reason, row.challenge) == (200, Reason.FOREIGN_CHALLENGE, foreign)


def test_locked_out_writes_one_row(alice_api, enrolled_alice, corpus):
    VerificationLockout.objects.update_or_create(
        user=enrolled_alice,
        defaults={
            "consecutive_failures": 5,
            "total_failures": 5,
            "locked_until": timezone.now() + timedelta(minutes=5),
        },
    )
    status, row = _one_row(alice_api, _answer(corpus, _challenge(alice_api)))
    assert (status, row.reason) == (429, Reason.LOCKED_OUT)


def test_disabled_voice_factor_writes_one_row(alice_api, enrolled_alice, corpus):
    VerificationLockout.objects.update_or_create(
        user=enrolled_alice,
        defaults={"consecutive_failures": 0, "total_failures": 50, "disabled_at": timezone.now()},
    )
    status, row = _one_row(alice_api, _answer(corpus, _challenge(alice_api)))
    assert (status, row.reason) == (403, Reason.VOICE_DISABLED)


def test_legacy_put_score_with_invalid_body_writes_one_row(alice_api, enrolled_alice):
    before = VerificationAttempt.objects.count()
    response = alice_api.put("/score", {"challenge": 7}, format="json")
    assert response.status_code == 400
    assert VerificationAttempt.objects.count() == before + 1
    assert VerificationAttempt.objects.order_by("-seq").first().reason == Reason.INVALID_INPUT


def test_not_enrolled_writes_one_row(bob_api, bob, corpus):
    status, row = _one_row(bob_api, _answer(corpus, "no-such-challenge"))
    assert (status, row.user, row.reason) == (200, bob, Reason.NOT_ENROLLED)


def test_invalid_features_write_one_row_and_spend_nothing(alice_api, enrolled_alice, corpus):
    nonce = _challenge(alice_api)
    body = _answer(corpus, nonce)
    body["utterances"][1]["mel_bands"][0][0] = True
    status, row = _one_row(alice_api, body)
    assert (status, row.decision, row.reason) == (400, Decision.REJECT, Reason.INVALID_INPUT)
    assert (row.challenge, row.frame_count, row.score) == (None, 0, None)
    assert Challenge.objects.get(nonce=nonce).used_at is None


def test_malformed_json_writes_one_row(alice_api, enrolled_alice):
    status, row = _one_row(alice_api, b'{"challenge": ', content_type="application/json")
    assert (status, row.reason) == (400, Reason.INVALID_INPUT)


def test_missing_challenge_field_writes_one_row(alice_api, enrolled_alice):
    status, row = _one_row(alice_api, {"utterances": []})
    assert (status, row.reason) == (400, Reason.INVALID_INPUT)


def test_unauthenticated_request_writes_nothing(api, enrolled_alice, corpus):
    response = api.post(SCORE, {"challenge": "x", "utterances": []}, format="json")
    assert response.status_code == 401
    assert not VerificationAttempt.objects.exists()


def test_decision_and_audit_row_commit_together(
    alice, alice_api, enrolled_alice, corpus, monkeypatch
):
    """If the audit row cannot be written, the rejection it records leaves no trace either:
    the challenge stays unspent and no failure is charged."""
    nonce = _challenge(alice_api)

    def refuse(**kwargs):
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(services, "verification_attempt_create", refuse)
    with pytest.raises(RuntimeError):
        services.verification_score(
            user=alice,
            challenge_id=nonce,
            utterances=corpus.answer(GENUINE, "1"),  # wrong length: rejected before scoring
            client=services.ClientInfo(),
        )
    assert Challenge.objects.get(nonce=nonce).used_at is None
    lockout = VerificationLockout.objects.filter(user=alice).first()
    assert lockout is None or lockout.consecutive_failures == 0


def test_enrollment_writes_utterance_and_training_events(enrolled_alice):
    events = AuditEvent.objects.filter(user=enrolled_alice).order_by("seq")
    kinds = list(events.values_list("kind", flat=True))
    assert kinds.count(AuditEventKind.UTTERANCE_ADDED) == 30
    assert kinds[-1] == AuditEventKind.MODEL_TRAINED


def test_audit_chain_verifies_after_every_outcome(alice_api, enrolled_alice, corpus):
    from django.core.management import call_command

    _one_row(alice_api, _answer(corpus, _challenge(alice_api)))
    _one_row(alice_api, _answer(corpus, _challenge(alice_api), IMPOSTOR))
    _one_row(alice_api, {"utterances": []})
    services.voiceprint_delete(user=enrolled_alice)
    call_command("verify_audit")  # raises CommandError naming the row if the chain broke
