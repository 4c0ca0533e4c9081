"""Lockout under attack: a growing delay after 5 consecutive failures, the voice factor disabled
after 50 until a staff reset, exact counters under 50 parallel wrong answers, and the password
path always open.

Wrong answers are real: another speaker (IMPOSTOR) saying the prompted digits, or the wrong
number of utterances. Counters live in Postgres under ``select_for_update`` and are committed
before the engine scores (DESIGN §6).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from verification import engine, selectors, services
from verification.models import Decision, Reason, VerificationAttempt, VerificationLockout
from verification.tests.conftest import token_client
from verification.tests.factories import ANSWER_INDEX, GENUINE, IMPOSTOR, payload, prompt

DIGITS = "31452"
CLIENT = services.ClientInfo(ip="198.51.100.9", user_agent="lockout-test")
SCORE = reverse("voiceprint-score")
PASSWORD = "correct horse battery staple"  # UserFactory's


def _attempt(user, corpus, speaker: str = IMPOSTOR, index: int = ANSWER_INDEX):
    challenge = services.challenge_create(user=user)
    prompt(challenge.nonce, DIGITS)
    return services.verification_score(
        user=user,
        challenge_id=challenge.nonce,
        utterances=corpus.answer(speaker, DIGITS, index=index),
        client=CLIENT,
    )


def _wrong(user, corpus, n: int) -> list:
    """n wrong answers that fail whatever the engine thinks: two utterances for a five-digit
    prompt (a different impostor take each). Charged like any failure."""
    rows = []
    for i in range(n):
        challenge = services.challenge_create(user=user)
        prompt(challenge.nonce, DIGITS)
        rows.append(
            services.verification_score(
                user=user,
                challenge_id=challenge.nonce,
                utterances=corpus.answer(IMPOSTOR, DIGITS[:2], index=i),
                client=CLIENT,
            ).attempt
        )
    return rows


def _scored_wrong(user, corpus, n: int) -> list:
    """n answers the engine scores and rejects: another speaker saying the prompted digits."""
    return [_attempt(user, corpus, IMPOSTOR, ANSWER_INDEX + i).attempt for i in range(n)]


def _lockout(user) -> VerificationLockout:
    return VerificationLockout.objects.get(user=user)


def _later(monkeypatch, seconds: float) -> None:
    """Move the services' clock forward (the delay is measured with timezone.now)."""
    now = timezone.now() + timedelta(seconds=seconds)
    monkeypatch.setattr(services.timezone, "now", lambda: now)


# --------------------------------------------------------------------------------------------------
# Sequential


def test_five_consecutive_failures_lock_for_at_least_thirty_seconds(enrolled_alice, corpus):
    rows = _scored_wrong(enrolled_alice, corpus, 5)
    assert [r.decision for r in rows] == [Decision.REJECT] * 5
    assert all(r.score is not None for r in rows)  # the engine scored each one
    outcome = _attempt(enrolled_alice, corpus, GENUINE)
    assert outcome.attempt.reason == Reason.LOCKED_OUT
    assert outcome.attempt.decision == Decision.REJECT
    assert outcome.retry_after >= 30
    assert outcome.attempt.score is None  # the genuine voice was never scored


def test_four_failures_do_not_lock(enrolled_alice, corpus):
    _wrong(enrolled_alice, corpus, 4)
    outcome = _attempt(enrolled_alice, corpus, GENUINE)
    assert outcome.attempt.reason != Reason.LOCKED_OUT
    assert outcome.attempt.score is not None
    assert outcome.retry_after is None


def test_locked_out_answer_is_429_with_retry_after_header(enrolled_alice, corpus):
    _wrong(enrolled_alice, corpus, 5)
    client = token_client(enrolled_alice)
    nonce = client.post(reverse("challenge-list")).json()["id"]
    prompt(nonce, DIGITS)
    body = {"challenge": nonce, "utterances": [payload(u) for u in corpus.answer(GENUINE, DIGITS)]}
    response = client.post(SCORE, body, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 30
    assert response.json()["reason"] == "locked_out"
    assert response.json()["retry_after"] == int(response["Retry-After"])


def test_delay_grows_with_each_failure_after_the_limit(enrolled_alice, corpus, monkeypatch):
    _wrong(enrolled_alice, corpus, 5)
    first = _lockout(enrolled_alice).locked_until - timezone.now()
    _later(monkeypatch, first.total_seconds() + 1)  # wait the delay out
    (failed,) = _wrong(enrolled_alice, corpus, 1)
    assert failed.reason == Reason.WRONG_CONTENT
    second = _lockout(enrolled_alice).locked_until - services.timezone.now()
    assert second > first
    assert second >= timedelta(seconds=59)


def test_attempt_after_the_delay_is_scored_again(enrolled_alice, corpus, monkeypatch):
    _wrong(enrolled_alice, corpus, 5)
    _later(monkeypatch, 31)
    outcome = _attempt(enrolled_alice, corpus, GENUINE)
    assert outcome.attempt.reason not in (Reason.LOCKED_OUT, Reason.VOICE_DISABLED)
    assert outcome.attempt.score is not None


def test_locked_out_attempts_are_not_charged(enrolled_alice, corpus):
    _wrong(enrolled_alice, corpus, 5)
    for i in range(3):
        assert _attempt(enrolled_alice, corpus, GENUINE, i + 30).attempt.reason == (
            Reason.LOCKED_OUT
        )
    assert _lockout(enrolled_alice).consecutive_failures == 5
    assert _lockout(enrolled_alice).total_failures == 5


def test_every_kind_of_failure_counts(enrolled_alice, corpus):
    """A foreign, unknown, wrong-length or replayed answer is a failure like a wrong voice."""
    services.verification_score(
        user=enrolled_alice,
        challenge_id="x" * 43,
        utterances=corpus.answer(GENUINE, "1"),
        client=CLIENT,
    )
    challenge = services.challenge_create(user=enrolled_alice)
    services.verification_score(
        user=enrolled_alice,
        challenge_id=challenge.nonce,
        utterances=corpus.answer(GENUINE, "12"),
        client=CLIENT,
    )
    assert _lockout(enrolled_alice).consecutive_failures == 2


def _accepted_take(user, corpus) -> int:
    """A take of GENUINE that the engine accepts for DIGITS, found offline (no attempt made):
    this test is about the counters, not about the engine's error rates."""
    row = selectors.speaker_model_get(user=user)
    ubm = selectors.background_model_engine(row.background_model)
    model = engine.load_speaker_model(bytes(row.blob))
    prompted = [int(d) for d in DIGITS]
    for index in range(ANSWER_INDEX, 50):
        answer = corpus.answer(GENUINE, DIGITS, index=index)
        if engine.verify(ubm, model, prompted, answer).accepted:
            return index
    pytest.fail("the engine accepts no take of the enrolled speaker")


def test_success_resets_the_consecutive_count(enrolled_alice, corpus):
    index = _accepted_take(enrolled_alice, corpus)
    _wrong(enrolled_alice, corpus, 4)
    accepted = _attempt(enrolled_alice, corpus, GENUINE, index)
    assert accepted.attempt.decision == Decision.ACCEPT, accepted.attempt.score
    lockout = _lockout(enrolled_alice)
    assert lockout.consecutive_failures == 0
    assert lockout.total_failures == 4
    # Four more failures are allowed again before a lock.
    rows = _wrong(enrolled_alice, corpus, 4)
    assert all(r.reason != Reason.LOCKED_OUT for r in rows)


def test_fifty_failures_disable_the_voice_factor_until_a_staff_reset(
    enrolled_alice, corpus, settings, staff
):
    settings.VERIFICATION_LOCKOUT_FAILURES = 1000  # no delays: reach 50 quickly
    _wrong(enrolled_alice, corpus, 50)
    assert _lockout(enrolled_alice).disabled_at is not None
    blocked = _attempt(enrolled_alice, corpus, GENUINE)
    assert blocked.attempt.reason == Reason.VOICE_DISABLED
    assert blocked.attempt.score is None

    services.verification_lockout_reset(user=enrolled_alice, actor=staff)
    after = _attempt(enrolled_alice, corpus, GENUINE, ANSWER_INDEX + 1)
    assert after.attempt.reason not in (Reason.VOICE_DISABLED, Reason.LOCKED_OUT)


def test_disabled_voice_factor_answers_403(enrolled_alice, corpus, settings):
    settings.VERIFICATION_LOCKOUT_DISABLE_AFTER = 2
    _wrong(enrolled_alice, corpus, 2)
    client = token_client(enrolled_alice)
    nonce = client.post(reverse("challenge-list")).json()["id"]
    prompt(nonce, DIGITS)
    body = {"challenge": nonce, "utterances": [payload(u) for u in corpus.answer(GENUINE, DIGITS)]}
    response = client.post(SCORE, body, format="json")
    assert response.status_code == 403
    assert response.json()["reason"] == "voice_disabled"


def test_password_login_works_while_the_voice_factor_is_disabled(
    enrolled_alice, corpus, settings, client
):
    settings.VERIFICATION_LOCKOUT_DISABLE_AFTER = 2
    _wrong(enrolled_alice, corpus, 2)
    assert _lockout(enrolled_alice).disabled_at is not None
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("profile")).status_code == 200
    token = client.post(reverse("api-token"), {"username": "alice", "password": PASSWORD})
    assert token.status_code == 200
    assert token.json()["token"]


def test_password_login_works_while_locked_out(enrolled_alice, corpus, client):
    _wrong(enrolled_alice, corpus, 5)
    assert _lockout(enrolled_alice).locked_until > timezone.now()
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("profile")).status_code == 200


def test_lockout_is_per_user(enrolled_alice, bob, corpus):
    from verification.tests.conftest import enroll

    enroll(bob, corpus)
    _wrong(enrolled_alice, corpus, 5)
    assert _attempt(bob, corpus, GENUINE).attempt.reason != Reason.LOCKED_OUT


# --------------------------------------------------------------------------------------------------
# Concurrent: every request on its own connection, released together


concurrent = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="parallel writers need Postgres"
)


def _in_parallel(user, corpus, n: int, answer_digits: str = DIGITS[:2]) -> list:
    """n wrong answers, each with its own challenge, released at once from n threads."""
    jobs = []
    for i in range(n):
        challenge = services.challenge_create(user=user)
        prompt(challenge.nonce, DIGITS)
        jobs.append((challenge.nonce, corpus.answer(IMPOSTOR, answer_digits, index=i % 50)))
    start = threading.Barrier(n)

    def run(job):
        nonce, utterances = job
        try:
            start.wait()
            return services.verification_score(
                user=user, challenge_id=nonce, utterances=utterances, client=CLIENT
            )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, jobs))


@concurrent
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_wrong_answers_score_exactly_five(enrolled_alice, corpus):
    outcomes = _in_parallel(enrolled_alice, corpus, 50)
    reasons = [o.attempt.reason for o in outcomes]
    assert reasons.count(Reason.LOCKED_OUT) == 45
    assert all(o.retry_after >= 30 for o in outcomes if o.attempt.reason == Reason.LOCKED_OUT)
    lockout = _lockout(enrolled_alice)
    assert (lockout.consecutive_failures, lockout.total_failures) == (5, 5)
    assert VerificationAttempt.objects.filter(user=enrolled_alice).count() == 50


@concurrent
@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_answers_disable_at_exactly_fifty(enrolled_alice, corpus, settings):
    settings.VERIFICATION_LOCKOUT_FAILURES = 1000  # no delay, so every request gets through
    outcomes = _in_parallel(enrolled_alice, corpus, 55)
    reasons = [o.attempt.reason for o in outcomes]
    assert reasons.count(Reason.VOICE_DISABLED) == 5
    lockout = _lockout(enrolled_alice)
    assert lockout.total_failures == 50
    assert lockout.disabled_at is not None


@concurrent
@pytest.mark.django_db(transaction=True)
def test_the_charge_is_committed_before_the_engine_scores(enrolled_alice, corpus, monkeypatch):
    """While the engine runs, another connection already sees the failure counted: a crash or
    a kill during scoring cannot give an attacker a free try."""
    seen = []
    real_verify = services.engine.verify

    def read_elsewhere() -> None:
        try:
            seen.append(_lockout(enrolled_alice).consecutive_failures)
        finally:
            connections.close_all()

    def verify_and_look(*args, **kwargs):
        reader = threading.Thread(target=read_elsewhere)
        reader.start()
        reader.join()
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(services.engine, "verify", verify_and_look)
    _wrong(enrolled_alice, corpus, 2)
    outcome = _attempt(enrolled_alice, corpus, GENUINE)
    assert outcome.attempt.score is not None
    assert seen == [3]


def test_failures_separated_by_accepts_never_disable_the_voice_factor(
    enrolled_alice, corpus, settings
):
    """The disable limit counts failures in a row: a genuine user's occasional rejections,
    each followed by an accept, do not add up."""
    settings.VERIFICATION_LOCKOUT_DISABLE_AFTER = 2
    for k in range(3):
        _wrong(enrolled_alice, corpus, 1)
        accepted = _attempt(enrolled_alice, corpus, GENUINE, ANSWER_INDEX + k).attempt
        assert accepted.decision == Decision.ACCEPT
    lockout = _lockout(enrolled_alice)
    assert lockout.disabled_at is None
    assert lockout.total_failures == 3
