"""Password guessing is throttled by django-axes (settings: ACCOUNTS_LOGIN_*).

Every password check goes through ``django.contrib.auth.authenticate`` with the Django request:
the sign-in forms (site and admin) already do; the token endpoint and HTTP Basic
authentication hand over the Django request under DRF's, because axes marks a locked-out
client on the object it is given and its middleware reads the mark off the Django request to
answer with :func:`lockout_response` instead.
"""

from __future__ import annotations

import math

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from drf_spectacular.authentication import BasicScheme
from rest_framework.authentication import BasicAuthentication


def django_request(request) -> HttpRequest:
    """The Django request under a DRF ``Request`` (or ``request`` itself)."""
    return getattr(request, "_request", request)


class PasswordBasicAuthentication(BasicAuthentication):
    """HTTP Basic authentication whose failures and lockouts axes sees."""

    def authenticate_credentials(self, userid, password, request=None):
        return super().authenticate_credentials(userid, password, django_request(request))


class _WithoutParameters:
    """A request seen without its query and form: everything else (and every attribute axes
    sets) is the request's own."""

    GET = POST = QueryDict()  # empty, immutable

    def __init__(self, request: HttpRequest) -> None:
        object.__setattr__(self, "_wrapped", request)

    def __getattr__(self, name: str):
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._wrapped, name, value)


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler, but a failed sign-in's query and form are not kept. A legacy
    ``curl --data`` POST carries its features as form data, and no table may hold features
    outside enrollment; nor is a body parsed (or refused for its size) here."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None:
            request = _WithoutParameters(request)
        return super().user_login_failed(sender, credentials, request, **kwargs)


class PasswordBasicScheme(BasicScheme):
    """OpenAPI: documented as plain HTTP Basic (registered by being defined)."""

    target_class = PasswordBasicAuthentication


def _is_api(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return request.path.startswith("/api/") or bool(
        match and (match.url_name or "").startswith("legacy-")
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """429 with Retry-After: the API's error shape for API clients, a page for the forms.

    Every attempt during a lockout, right or wrong, counts as a failure and restarts the
    cool-off (axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the whole cool-off is
    the honest wait. No CORS headers (axes' own answer to XHR would send them)."""
    seconds = math.ceil(get_cool_off(request).total_seconds())
    minutes = math.ceil(seconds / 60)
    detail = (
        f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    if _is_api(request):
        response = JsonResponse({"detail": detail, "code": "login_locked_out"}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"detail": detail}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def expired_failures(*, now):
    """The counted failed sign-ins older than the cool-off: they no longer count, and they hold a
    username, an address and a user agent (``apply_retention`` deletes them)."""
    from axes.models import AccessAttempt  # an app's model: imported once apps are ready

    return AccessAttempt.objects.filter(attempt_time__lte=now - get_cool_off())
