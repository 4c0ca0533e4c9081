"""Liveness and readiness probes for load balancers and orchestrators: ``/healthz``, ``/readyz``.

Answered first in the middleware stack, before host validation and the HTTPS redirect: a probe
comes from inside the platform, over plain HTTP, addressed to the machine rather than to a name
in DJANGO_ALLOWED_HOSTS. Neither reads a session, a user or a body, and neither says more than
which check failed.

- ``/healthz``: the process answers (no database): restart it when this fails.
- ``/readyz``: it can serve: the database answers, every migration is applied, and a background
  model is installed (without one, nobody can enroll). Route no traffic to it until this is 200.
"""

from __future__ import annotations

import logging
import threading

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("speakerauth.health")

LIVE, READY = "/healthz", "/readyz"
RETRY_AFTER_SECONDS = 5

# What a lost or unreachable database raises ("connection already closed" is an InterfaceError,
# which is not a DatabaseError).
_OUTAGE = (DatabaseError, InterfaceError)

# Migrations are never unapplied while the process runs: once all are in, stop re-reading the
# migration graph (tens of milliseconds) on every probe.
_migrated = threading.Event()


def _database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _migrations() -> str:
    if not _migrated.is_set():
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return "pending"
        _migrated.set()
    return "ok"


def _background_model() -> str:
    from verification import selectors  # an app's model: imported once apps are ready

    return "ok" if selectors.background_model_active() is not None else "missing"


_DATABASE_DOWN = {"database": "unavailable", "migrations": "unknown", "background_model": "unknown"}


def readiness() -> dict[str, str]:
    """{check: "ok" | what is wrong}; the later checks need the database, so they are skipped
    ("unknown") when it does not answer."""
    try:
        checks = {"database": _database()}
    except _OUTAGE as exc:
        logger.warning("readiness: database unavailable (%s)", type(exc).__name__)
        return dict(_DATABASE_DOWN)
    try:
        checks["migrations"] = _migrations()
        checks["background_model"] = (
            _background_model() if checks["migrations"] == "ok" else "unknown"
        )
    except _OUTAGE as exc:  # lost between the checks
        logger.warning("readiness: database error (%s)", type(exc).__name__)
        checks = dict(_DATABASE_DOWN)
    return checks


def _answer(request: HttpRequest, status: int, body: dict) -> HttpResponse:
    response = JsonResponse(body, status=status)
    if request.method == "HEAD":
        response.content = b""
    response["Cache-Control"] = "no-store"
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class HealthCheckMiddleware:
    """First in MIDDLEWARE: GET or HEAD of LIVE or READY is answered here; all else passes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in (LIVE, READY) or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if request.path_info == LIVE:
            return _answer(request, 200, {"status": "ok"})
        checks = readiness()
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return _answer(request, 200 if ready else 503, body)
