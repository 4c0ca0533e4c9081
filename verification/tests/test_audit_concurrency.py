"""50 concurrent verification requests, each on its own database connection, leave a hash chain
that verifies (issue 6, acceptance 1). Needs Postgres: it is the database whose writers really
run in parallel (SQLite serialises whole write transactions, and its in-memory test database is
one connection)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection, connections
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from verification import services
from verification.models import VerificationAttempt
from verification.tests.conftest import enroll
from verification.tests.factories import GENUINE, IMPOSTOR, payload, prompt

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="concurrent writers need Postgres"
    ),
]

REQUESTS = 50
USERS = 5
DIGITS = "31452"


def test_fifty_concurrent_verifications_leave_a_chain_that_verifies(ubm, corpus, settings):
    settings.VERIFICATION_LOCKOUT_FAILURES = 0  # every request reaches the engine
    users = [enroll(UserFactory(), corpus) for _ in range(USERS)]
    jobs = []
    for i in range(REQUESTS):
        user = users[i % USERS]
        challenge = services.challenge_create(user=user)
        prompt(challenge.nonce, DIGITS)
        speaker = GENUINE if i % 2 else IMPOSTOR
        utterances = [payload(u) for u in corpus.answer(speaker, DIGITS)]
        jobs.append((user, {"challenge": challenge.nonce, "utterances": utterances}))
    start = threading.Barrier(REQUESTS)

    def verify(job) -> tuple[int, str]:
        user, body = job
        client = APIClient()
        client.force_authenticate(user)
        try:
            start.wait()
            response = client.post("/api/v1/voiceprint/score/", body, format="json")
            return response.status_code, response.content[:300].decode(errors="replace")
        except Exception as exc:  # reported by the assert below, with the others
            return 0, repr(exc)[:300]
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        statuses = list(pool.map(verify, jobs))

    failures = [outcome for outcome in statuses if outcome[0] != 200]
    assert failures == []
    seqs = list(VerificationAttempt.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, REQUESTS + 1))
    call_command("verify_audit")  # raises CommandError naming the first bad row
