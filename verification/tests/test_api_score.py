"""POST/PUT /api/v1/voiceprint/score/: answering a challenge, with real fsdd features.

alice is enrolled with GENUINE's recordings 0..2 of every digit; answers use later recordings
(ANSWER_INDEX) of GENUINE (genuine) or IMPOSTOR (another speaker). Every score request that
passes validation writes exactly one audit row, whatever the decision.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from verification.models import Challenge, Decision, Reason, VerificationAttempt
from verification.tests.conftest import enroll, token_client
from verification.tests.factories import GENUINE, IMPOSTOR, payload, prompt

SCORE = reverse("voiceprint-score")
CHALLENGES = reverse("challenge-list")
DIGITS = "31452"


def challenge(client, digits: str = DIGITS) -> str:
    """A fresh challenge of the client's user, its digits pinned so decisions are reproducible."""
    response = client.post(CHALLENGES)
    assert response.status_code == 201, response.content
    nonce = response.json()["id"]
    prompt(nonce, digits)
    return nonce


def answer(corpus, nonce: str, speaker: str = GENUINE, digits: str = DIGITS, **kw) -> dict:
    return {
        "challenge": nonce,
        "utterances": [payload(u) for u in corpus.answer(speaker, digits, **kw)],
    }


def score(client, body: dict, method: str = "post"):
    """Send a score request; check it wrote exactly one audit row, and return (response, row)."""
    before = set(VerificationAttempt.objects.values_list("pk", flat=True))
    response = getattr(client, method)(SCORE, body, format="json", HTTP_USER_AGENT="pytest-ua/1")
    new = VerificationAttempt.objects.exclude(pk__in=before)
    assert new.count() == 1, f"{new.count()} audit rows for one score request"
    row = new.get()
    assert response.json()["attempt"] == row.pk
    return response, row


# --------------------------------------------------------------------------------------------------
# Decisions on real speakers


def test_genuine_speaker_is_accepted(alice_api, enrolled_alice, corpus):
    response, row = score(alice_api, answer(corpus, challenge(alice_api)))
    assert response.status_code == 200
    assert response.json()["decision"] == "accept", row.score
    assert response.json()["reason"] == Reason.ACCEPTED
    assert (row.decision, row.reason) == (Decision.ACCEPT, Reason.ACCEPTED)


def test_another_speaker_is_rejected(alice_api, enrolled_alice, corpus):
    response, row = score(alice_api, answer(corpus, challenge(alice_api), speaker=IMPOSTOR))
    assert response.status_code == 200
    assert response.json()["decision"] == "reject", row.score
    assert row.decision == Decision.REJECT
    assert row.reason in {Reason.LOW_SCORE, Reason.WRONG_CONTENT}


def test_score_accepts_put(alice_api, enrolled_alice, corpus):
    response, row = score(alice_api, answer(corpus, challenge(alice_api)), method="put")
    assert response.status_code == 200
    assert row.decision == Decision.ACCEPT


def test_the_audit_row_records_the_context_of_the_decision(alice_api, enrolled_alice, corpus, ubm):
    nonce = challenge(alice_api)
    body = answer(corpus, nonce)
    _, row = score(alice_api, body)
    assert row.user == enrolled_alice
    assert row.challenge.nonce == nonce
    assert row.background_model_id == ubm.pk
    assert row.ubm_version == ubm.version
    assert row.speaker_model_version == 1
    assert row.frame_count == sum(u.n_frames for u in corpus.answer(GENUINE, DIGITS))
    assert row.threshold == pytest.approx(ubm.threshold)
    assert row.score is not None
    assert row.client_ip == "127.0.0.1"
    assert row.user_agent == "pytest-ua/1"


# --------------------------------------------------------------------------------------------------
# Challenges that cannot be answered


def test_replaying_a_used_challenge_is_rejected(alice_api, enrolled_alice, corpus):
    body = answer(corpus, challenge(alice_api))
    score(alice_api, body)
    again, row = score(alice_api, body)
    assert again.json() == {
        "decision": "reject",
        "reason": Reason.REPLAYED_CHALLENGE,
        "attempt": row.pk,
    }


def test_unknown_challenge_is_rejected_and_audited(alice_api, enrolled_alice, corpus):
    response, row = score(alice_api, answer(corpus, "n0-such-challenge"))
    assert response.status_code == 200
    assert response.json()["reason"] == Reason.UNKNOWN_CHALLENGE
    assert (row.decision, row.challenge) == (Decision.REJECT, None)


def test_expired_challenge_is_rejected(alice_api, enrolled_alice, corpus, settings):
    nonce = challenge(alice_api)
    past = timezone.now() - timedelta(seconds=settings.VERIFICATION_CHALLENGE_TTL + 1)
    Challenge.objects.filter(nonce=nonce).update(
        created_at=past - timedelta(seconds=settings.VERIFICATION_CHALLENGE_TTL), expires_at=past
    )
    response, row = score(alice_api, answer(corpus, nonce))
    assert response.json()["decision"] == "reject"
    assert row.reason == Reason.EXPIRED_CHALLENGE


def test_challenge_issued_to_a_browser_session_is_refused_to_a_token(
    client, enrolled_alice, corpus
):
    client.force_login(enrolled_alice)
    nonce = client.post(CHALLENGES).json()["id"]
    prompt(nonce, DIGITS)
    assert Challenge.objects.get(nonce=nonce).session_key
    response, row = score(token_client(enrolled_alice), answer(corpus, nonce))
    assert response.json()["decision"] == "reject"
    assert row.reason == Reason.SESSION_MISMATCH


def test_challenge_answered_in_its_own_browser_session_is_accepted(client, enrolled_alice, corpus):
    client.force_login(enrolled_alice)
    nonce = client.post(CHALLENGES).json()["id"]
    prompt(nonce, DIGITS)
    response = client.post(SCORE, answer(corpus, nonce), content_type="application/json")
    assert response.json()["decision"] == "accept"


# --------------------------------------------------------------------------------------------------
# Answers that do not match the prompt


def test_utterances_labelled_with_other_digits_are_rejected(alice_api, enrolled_alice, corpus):
    body = answer(corpus, challenge(alice_api))
    for utterance, digit in zip(body["utterances"], "27189", strict=True):
        utterance["digit"] = int(digit)
    response, row = score(alice_api, body)
    assert response.json()["decision"] == "reject"
    assert row.reason == Reason.WRONG_CONTENT


def test_saying_other_digits_is_rejected(alice_api, enrolled_alice, corpus):
    """The genuine voice saying 27189 to the prompt 31452, unlabelled: the content check."""
    nonce = challenge(alice_api)
    response, row = score(alice_api, answer(corpus, nonce, digits="27189"))
    assert response.json()["decision"] == "reject"
    assert row.reason == Reason.WRONG_CONTENT


def test_too_few_utterances_are_rejected(alice_api, enrolled_alice, corpus):
    body = answer(corpus, challenge(alice_api))
    body["utterances"] = body["utterances"][:4]
    response, row = score(alice_api, body)
    assert response.json()["decision"] == "reject"
    assert row.reason == Reason.WRONG_CONTENT


def test_a_failed_answer_spends_the_challenge(alice_api, enrolled_alice, corpus):
    nonce = challenge(alice_api)
    score(alice_api, answer(corpus, nonce, digits="27189"))
    response, row = score(alice_api, answer(corpus, nonce))
    assert row.reason == Reason.REPLAYED_CHALLENGE


def test_score_without_a_voiceprint_is_rejected_and_audited(bob_api, bob, corpus):
    response, row = score(bob_api, answer(corpus, "whatever-id"))
    assert response.status_code == 200
    assert response.json()["decision"] == "reject"
    assert (row.user, row.reason) == (bob, Reason.NOT_ENROLLED)


def test_invalid_body_is_400_naming_the_field(alice_api, enrolled_alice, corpus):
    body = answer(corpus, challenge(alice_api))
    del body["utterances"][2]["rms"]
    response = alice_api.post(SCORE, body, format="json")
    assert response.status_code == 400
    assert response.json()["field"].startswith("utterances[2]")


# --------------------------------------------------------------------------------------------------
# Who sees scores


def test_claimant_never_sees_the_score_by_default(alice_api, enrolled_alice, corpus, settings):
    settings.VERIFICATION_EXPOSE_SCORE = False
    for speaker in (GENUINE, IMPOSTOR):
        response, _ = score(alice_api, answer(corpus, challenge(alice_api), speaker=speaker))
        assert set(response.json()) == {"decision", "reason", "attempt"}


def test_scores_are_exposed_when_the_setting_is_on(alice_api, enrolled_alice, corpus, settings):
    settings.VERIFICATION_EXPOSE_SCORE = True
    response, row = score(alice_api, answer(corpus, challenge(alice_api)))
    body = response.json()
    assert body["score"] == pytest.approx(row.score)
    assert body["threshold"] == pytest.approx(row.threshold)
    assert body["score"] >= body["threshold"]


def test_staff_see_their_own_scores(staff_api, staff, ubm, corpus, settings):
    settings.VERIFICATION_EXPOSE_SCORE = False
    enroll(staff, corpus)
    response, row = score(staff_api, answer(corpus, challenge(staff_api)))
    assert response.json()["score"] == pytest.approx(row.score)


# --------------------------------------------------------------------------------------------------
# Another user's challenge


def test_answering_another_users_challenge_is_rejected_and_spends_it(
    alice_api, enrolled_alice, bob, corpus
):
    enroll(bob, corpus, speaker=IMPOSTOR)
    bob_api = token_client(bob)
    bobs = challenge(bob_api)
    response, row = score(alice_api, answer(corpus, bobs))
    assert response.json()["decision"] == "reject"
    assert (row.user, row.reason) == (enrolled_alice, Reason.FOREIGN_CHALLENGE)
    # An intercepted nonce dies on first use: bob cannot answer it any more either.
    _, bobs_row = score(bob_api, answer(corpus, bobs, speaker=IMPOSTOR))
    assert bobs_row.reason == Reason.REPLAYED_CHALLENGE


def test_bobs_voice_is_not_scored_against_alices_model(alice_api, enrolled_alice, bob, corpus):
    """bob enrolled with his own voice; alice's voice answering bob's challenge is not alice."""
    enroll(bob, corpus, speaker=IMPOSTOR)
    bob_api = token_client(bob)
    response, row = score(bob_api, answer(corpus, challenge(bob_api), speaker=GENUINE))
    assert response.json()["decision"] == "reject", row.score
    assert row.user == bob
    assert row.speaker_model_version == 1
