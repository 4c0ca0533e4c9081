"""Domain errors of verification and the one place they become HTTP answers.

``api_exception_handler`` is registered as DRF's ``EXCEPTION_HANDLER``. Every error body has the
same shape: ``{"detail": "...", "code": "...", "field": "..."}`` (``field`` only when one input
field is at fault), so a client never has to guess where the message is.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from verification.features import FeatureError

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A request that is well formed but cannot be served in the current state."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InputError(DomainError):
    """A request body that does not follow the API (not the feature contract: FeatureError)."""

    code = "invalid"


class NotEnrolled(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "not_enrolled"


class ConsentRequired(DomainError):
    """Enrollment without a standing consent to the current consent text (DESIGN §6)."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "consent_required"


class NoBackgroundModel(DomainError):
    """The deployment has no active background model (run ``manage.py install_default_ubm``)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "no_background_model"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


class MalformedBody(exceptions.ParseError):
    """A body that is not one plain JSON document (syntax, duplicate keys, too deep, bad bytes)."""


def _first_error(detail, prefix: str = "") -> tuple[str | None, str, str]:
    """Walk DRF's nested error detail to its first leaf: (field path, message, code)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return _first_error(value, prefix)
            path = f"{prefix}.{key}" if prefix else str(key)
            return _first_error(value, path)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list) and value:
                field, message, code = _first_error(value, f"{prefix}[{index}]")
                return field, message, code
            if not isinstance(value, dict | list):
                return (prefix or None), str(value), getattr(value, "code", "invalid")
    return (prefix or None), str(detail), getattr(detail, "code", "invalid")


def error_body(message: str, *, code: str, field: str | None = None) -> dict:
    body = {"detail": message, "code": code}
    if field:
        body["field"] = field
    return body


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Map feature-contract, domain and DRF errors to 4xx answers; let real bugs surface."""
    if isinstance(exc, FeatureError):
        return Response(
            error_body(exc.message, code="invalid", field=exc.field),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, DomainError):
        return Response(
            error_body(exc.message, code=exc.code, field=exc.field), status=exc.status_code
        )
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_error(exc.detail)
        body = error_body(message, code=code, field=field)
        body["errors"] = response.data
        response.data = body
    elif isinstance(exc, exceptions.APIException) and isinstance(response.data, dict):
        response.data.setdefault("code", exc.get_codes() if isinstance(exc.detail, str) else "")
    elif isinstance(exc, Http404):
        response.data["code"] = "not_found"
    return response
