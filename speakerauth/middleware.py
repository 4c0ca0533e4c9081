"""Answer 503 (not 500) while the database is unreachable.

A restart or failover of Postgres makes every query raise ``OperationalError`` or
``InterfaceError`` until the server is back. That is an outage the client should retry, not a
bug: the response is a short 503 with ``Retry-After`` and no stack trace, and the log gets one
warning line instead of a traceback per request. Nothing to do on recovery: Django drops the
broken connection when the request finishes, and the next request that needs the database
health-checks (``conn_health_checks``) and reopens it.
"""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("speakerauth.database")

RETRY_AFTER_SECONDS = 5
MESSAGE = "The service is temporarily unavailable; please retry shortly."


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or "application/json" in accept
        or request.content_type == "application/json"
    )


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        body = {"detail": MESSAGE, "code": "unavailable"}
        response: HttpResponse = JsonResponse(body, status=503)
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Map database connection failures raised by a view to a 503 response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning(
            "database unavailable: %s %s -> 503 (%s: %s)",
            request.method,
            request.path,
            type(exception).__name__,
            str(exception).strip().splitlines()[0] if str(exception).strip() else "",
        )
        return database_unavailable_response(request)
