"""Schema fuzzing (Schemathesis, in-process against the WSGI app): every operation of
/api/schema/, called with generated (and schema-violating) requests by a token-authenticated,
enrolled user, answers without a server error and as the schema says (status code, content
type, headers, body). Bounded by ``SCHEMA_FUZZ_EXAMPLES`` examples per operation.

The case count is printed per operation (``pytest -s``) and totalled in ``CASES``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from verification.tests.conftest import enroll

# Marked, not only requested: Schemathesis resolves fixtures lazily, after pytest-django would
# have set up the test database for a test that merely asks for `db`.
pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "25"))
CASES: dict[str, int] = {}

# Zero server errors, zero schema violations. Not `positive_data_acceptance`: the schema
# cannot express every rule (e.g. that band energies fit the frame's rms), so a schema-valid
# body may still be refused with a 400, which is the point of the strict validation. Not
# `negative_data_rejection`: DRF's pagination reads a malformed `offset`/`limit` as the default
# instead of refusing it (harmless: it only selects which of the caller's own rows to list).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@contextmanager
def _request_signals_unhooked():
    """Requests go through the real WSGI handler, whose request signals would close (or, outside
    a test, open) the connection holding the test's transaction; Django's test client unhooks
    them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def api_schema(django_db_blocker):
    from speakerauth.wsgi import application

    with django_db_blocker.unblock(), _request_signals_unhooked():
        return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    with _request_signals_unhooked():
        yield


@pytest.fixture
def fuzz_token(ubm, corpus, alice):
    """alice enrolled (so challenges and scores reach the service), authenticating by token."""
    enroll(alice, corpus)
    return Token.objects.get_or_create(user=alice)[0].key


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_operation_answers_as_documented(case, fuzz_token):
    # Throttles would turn most cases into 429s (documented, but they test nothing else).
    cache.clear()
    case.call_and_validate(headers={"Authorization": f"Token {fuzz_token}"}, checks=CHECKS)
    key = f"{case.method} {case.path}"
    CASES[key] = CASES.get(key, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_case_count():
    yield
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases over {len(CASES)} operations")  # noqa: T201
    for key, count in sorted(CASES.items()):
        print(f"  {count:4d}  {key}")  # noqa: T201
