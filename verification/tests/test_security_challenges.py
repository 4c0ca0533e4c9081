"""Challenges under attack: unguessable nonces, spent exactly once even by parallel requests,
short-lived, bound to their user and browser session; every misuse is a charged, audited reject.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from verification import services
from verification.models import (
    Challenge,
    Decision,
    Reason,
    VerificationAttempt,
    VerificationLockout,
)
from verification.tests.conftest import enroll, token_client
from verification.tests.factories import GENUINE, payload, prompt

DIGITS = "31452"
CLIENT = services.ClientInfo(ip="203.0.113.5", user_agent="challenge-test")


def _answer(user, nonce: str, corpus, client: services.ClientInfo = CLIENT):
    return services.verification_score(
        user=user, challenge_id=nonce, utterances=corpus.answer(GENUINE, DIGITS), client=client
    ).attempt


def _fresh(user, session_key: str = "") -> str:
    challenge = services.challenge_create(user=user, session_key=session_key)
    prompt(challenge.nonce, DIGITS)
    return challenge.nonce


def test_nonce_carries_at_least_128_random_bits(enrolled_alice):
    nonces = [services.challenge_create(user=enrolled_alice).nonce for _ in range(20)]
    assert len(set(nonces)) == 20
    for nonce in nonces:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        assert len(raw) * 8 >= 128
    # Not derived from the row id or the clock: no common prefix across consecutive nonces.
    assert len({n[:4] for n in nonces}) > 15


def test_the_database_id_does_not_answer_a_challenge(enrolled_alice, corpus):
    challenge = services.challenge_create(user=enrolled_alice)
    attempt = _answer(enrolled_alice, str(challenge.pk), corpus)
    assert attempt.reason == Reason.UNKNOWN_CHALLENGE
    assert Challenge.objects.get(pk=challenge.pk).used_at is None


def test_reused_nonce_is_rejected_and_audited(enrolled_alice, corpus):
    nonce = _fresh(enrolled_alice)
    first = _answer(enrolled_alice, nonce, corpus)
    assert first.reason != Reason.REPLAYED_CHALLENGE
    second = _answer(enrolled_alice, nonce, corpus)
    assert (second.decision, second.reason) == (Decision.REJECT, Reason.REPLAYED_CHALLENGE)
    assert second.challenge.nonce == nonce
    assert second.score is None


def test_expired_nonce_is_rejected_audited_and_spent(enrolled_alice, corpus, settings, monkeypatch):
    settings.VERIFICATION_CHALLENGE_TTL = 60
    nonce = _fresh(enrolled_alice)
    later = timezone.now() + timedelta(seconds=61)
    monkeypatch.setattr(services.timezone, "now", lambda: later)
    attempt = _answer(enrolled_alice, nonce, corpus)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.EXPIRED_CHALLENGE)
    assert Challenge.objects.get(nonce=nonce).used_at is not None


def test_another_users_nonce_is_rejected_audited_and_spent(enrolled_alice, bob, corpus):
    enroll(bob, corpus)
    bobs = _fresh(bob)
    attempt = _answer(enrolled_alice, bobs, corpus)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.FOREIGN_CHALLENGE)
    assert attempt.user == enrolled_alice
    # The intercepted nonce is dead for bob too.
    assert _answer(bob, bobs, corpus).reason == Reason.REPLAYED_CHALLENGE


def test_unknown_nonce_is_rejected_and_audited(enrolled_alice, corpus):
    attempt = _answer(enrolled_alice, "A" * 43, corpus)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.UNKNOWN_CHALLENGE)


def test_nonce_of_another_browser_session_is_rejected(enrolled_alice, corpus):
    nonce = _fresh(enrolled_alice, session_key="session-one")
    other = services.ClientInfo(ip="203.0.113.5", session_key="session-two")
    attempt = _answer(enrolled_alice, nonce, corpus, other)
    assert (attempt.decision, attempt.reason) == (Decision.REJECT, Reason.SESSION_MISMATCH)


def test_session_bound_nonce_is_refused_to_a_token_client(enrolled_alice, corpus, client):
    """A challenge fetched by the browser page cannot be answered by a script holding alice's
    token (no session)."""
    client.force_login(enrolled_alice)
    nonce = client.post(reverse("challenge-list")).json()["id"]
    assert Challenge.objects.get(nonce=nonce).session_key == client.session.session_key
    prompt(nonce, DIGITS)
    body = {"challenge": nonce, "utterances": [payload(u) for u in corpus.answer(GENUINE, DIGITS)]}
    response = token_client(enrolled_alice).post(reverse("voiceprint-score"), body, format="json")
    assert response.json()["reason"] == Reason.SESSION_MISMATCH


def test_misused_nonces_count_as_failures(enrolled_alice, corpus):
    _answer(enrolled_alice, "B" * 43, corpus)
    nonce = _fresh(enrolled_alice)
    _answer(enrolled_alice, nonce, corpus)
    _answer(enrolled_alice, nonce, corpus)
    lockout = VerificationLockout.objects.get(user=enrolled_alice)
    assert lockout.total_failures >= 2  # the unknown and the reused one (the first may pass)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel writers need Postgres")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lockout", ["on", "off"])
def test_parallel_submissions_of_one_nonce_score_exactly_once(
    enrolled_alice, corpus, settings, lockout
):
    """Two (and then eight) requests racing with one nonce: exactly one reaches the engine, the
    others are audited as replayed challenges. With the lockout off no lockout row serialises
    them, so the conditional UPDATE on the challenge alone must hold."""
    # "on": lockout rows serialise the racers (limit raised so none is locked out meanwhile).
    settings.VERIFICATION_LOCKOUT_FAILURES = 1000 if lockout == "on" else 0
    for round_, racers in enumerate((2, 8)):
        nonce = _fresh(enrolled_alice)
        utterances = corpus.answer(GENUINE, DIGITS, index=30 + round_)
        start = threading.Barrier(racers)

        def race(_, nonce=nonce, utterances=utterances, start=start):
            try:
                start.wait()
                return services.verification_score(
                    user=enrolled_alice, challenge_id=nonce, utterances=utterances, client=CLIENT
                ).attempt.reason
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=racers) as pool:
            reasons = list(pool.map(race, range(racers)))
        assert reasons.count(Reason.REPLAYED_CHALLENGE) == racers - 1, reasons
        rows = VerificationAttempt.objects.filter(challenge__nonce=nonce)
        assert rows.count() == racers
        assert rows.exclude(reason=Reason.REPLAYED_CHALLENGE).count() == 1


@pytest.mark.parametrize("k", [1, 5, 10])
def test_challenge_digits_are_distinct(enrolled_alice, settings, k):
    settings.VERIFICATION_CHALLENGE_DIGITS = k
    for _ in range(50):
        digits = services.challenge_create(user=enrolled_alice).digits
        assert len(digits) == k
        assert len(set(digits)) == k


def test_long_challenges_never_repeat_a_digit_back_to_back(enrolled_alice, settings):
    settings.VERIFICATION_CHALLENGE_DIGITS = 16
    for _ in range(50):
        digits = services.challenge_create(user=enrolled_alice).digits
        assert all(a != b for a, b in zip(digits, digits[1:], strict=False))
        assert len(set(digits[:10])) == 10
