"""A request id on every response and every log line written while serving it.

Heroku's router (and most proxies) sends ``X-Request-ID``; one that looks like an id is kept, so
the router's log and the app's meet on it, and anything else is replaced by a fresh UUID (a
client cannot write arbitrary text into the logs). The id goes back as ``X-Request-ID``; quote it
when reporting a problem.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from django.core.signals import request_finished

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,200}")
_current: ContextVar[str] = ContextVar("request_id", default="-")


def request_id_from(meta: dict) -> str:
    incoming = meta.get("HTTP_X_REQUEST_ID", "")
    return incoming if _ACCEPTED.fullmatch(incoming) else uuid.uuid4().hex


class RequestIDMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_from(request.META)
        # Cleared when the response is closed (request_finished), not on the way out: Django logs
        # a 4xx/5xx after the last middleware has returned.
        _current.set(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


def _request_finished(**kwargs) -> None:
    _current.set("-")


request_finished.connect(_request_finished, dispatch_uid="speakerauth.request_id")


class RequestIDFilter(logging.Filter):
    """Adds ``request_id`` to each record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get()
        return True
