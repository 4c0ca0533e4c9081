"""Deployment posture under attack: a Content-Security-Policy on every page (Django's built-in
CSP) with no inline script, secure SameSite cookies and HSTS in production, CSRF enforced on
every state-changing endpoint the pages use, and no CORS grant to any foreign origin.

``check --deploy`` itself is run by ``accounts/tests/test_deploy.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from verification.tests.conftest import consent, token_client

ROOT = Path(__file__).resolve().parents[2]

PAGES = [
    ("home", None),
    ("login", None),
    ("signup", None),
    ("password_reset", None),
    ("profile", "alice"),
    ("enroll", "alice"),
    ("verify", "alice"),
    ("history", "alice"),
    ("password_change", "alice"),
    ("admin:login", None),
    ("admin:index", "staff"),
    ("admin:verification_dashboard", "staff"),
    ("swagger-ui", "alice"),
]
PAGE_IDS = [page for page, _ in PAGES]


def _directives(header: str) -> dict[str, list[str]]:
    parts = (p.strip().split() for p in header.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


@pytest.fixture
def browser(request, alice, staff):
    client = Client()
    who = request.param
    if who:
        client.force_login(alice if who == "alice" else staff)
    return client


@pytest.mark.parametrize(("page", "browser"), PAGES, indirect=["browser"], ids=PAGE_IDS)
def test_every_page_carries_a_strict_csp(page, browser):
    response = browser.get(reverse(page))
    assert response.status_code == 200
    csp = _directives(response["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    for sources in csp.values():
        assert "'unsafe-inline'" not in sources
        assert "'unsafe-eval'" not in sources
        assert "*" not in sources


@pytest.mark.parametrize(("page", "browser"), PAGES, indirect=["browser"], ids=PAGE_IDS)
def test_no_page_needs_what_the_csp_forbids(page, browser):
    """Every script is an external same-origin file (an inline one would be blocked, so the page
    would silently break) and no script or stylesheet comes from another host."""
    html = browser.get(reverse(page)).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        if 'type="application/json"' in tag:  # json_script data, never executed
            continue
        src = re.search(r'src="([^"]+)"', tag)
        assert src, f"inline script on {page}: {tag}"
        assert src.group(1).startswith("/"), f"foreign script on {page}: {src.group(1)}"
    for href in re.findall(r'<link\b[^>]*rel="stylesheet"[^>]*href="([^"]+)"', html):
        assert href.startswith("/"), f"foreign stylesheet on {page}: {href}"


# --------------------------------------------------------------------------------------------------
# Production settings, in a fresh interpreter (settings are read once per process)

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client, override_settings
# Pages render static URLs: without collectstatic's manifest (tests/test_static_storage.py
# covers it) use plain storage, so the probe measures the security settings alone.
plain = {**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
override_settings(STORAGES=plain).enable()
client = Client()
response = client.get("/accounts/login/", secure=True)
cookie = response.cookies["csrftoken"]
insecure = client.get("/accounts/login/")
print(json.dumps({
    "status": response.status_code,
    "csp": response.get("Content-Security-Policy", ""),
    "hsts": response.get("Strict-Transport-Security", ""),
    "nosniff": response.get("X-Content-Type-Options", ""),
    "frame": response.get("X-Frame-Options", ""),
    "referrer": response.get("Referrer-Policy", ""),
    "csrf_cookie": {"secure": cookie["secure"], "samesite": cookie["samesite"]},
    "http_status": insecure.status_code,
    "http_location": insecure.get("Location", ""),
    "session_cookie": {
        "secure": settings.SESSION_COOKIE_SECURE,
        "httponly": settings.SESSION_COOKIE_HTTPONLY,
        "samesite": settings.SESSION_COOKIE_SAMESITE,
    },
    "cors": sorted(k for k in dir(settings) if k.startswith("CORS_")),
    "apps": [a for a in settings.INSTALLED_APPS if "cors" in a],
}))
"""


@pytest.fixture(scope="module")
def production():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "speakerauth.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "prod-probe-" + "s3cr3t" * 10,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_production_serves_pages_over_https_only(production):
    assert production["status"] == 200
    assert production["http_status"] == 301
    assert production["http_location"].startswith("https://")
    assert "max-age=31536000" in production["hsts"]


def test_production_cookies_are_secure_and_same_site(production):
    assert production["csrf_cookie"] == {"secure": True, "samesite": "Lax"}
    assert production["session_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}


def test_production_pages_carry_csp_and_hardening_headers(production):
    csp = _directives(production["csp"])
    assert csp["script-src"] == ["'self'"]
    assert production["nosniff"] == "nosniff"
    assert production["frame"] == "DENY"
    assert production["referrer"] == "same-origin"


def test_no_cors_is_configured(production):
    assert production["cors"] == []
    assert production["apps"] == []


# --------------------------------------------------------------------------------------------------
# CSRF: a session (the pages' authentication) cannot be ridden by another site


@pytest.fixture
def page_session(enrolled_alice):
    """alice signed in through the pages, with CSRF enforced as in a real browser."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(enrolled_alice)
    client.get(reverse("verify"))  # the page sets the CSRF cookie
    return client


STATE_CHANGING = [
    ("post", "challenge-list", {}),
    ("post", "voiceprint-train", {"digit": 1}),
    ("post", "voiceprint-test", {"digit": 1}),
    ("post", "voiceprint-score", {"challenge": "x", "utterances": []}),
    ("delete", "voiceprint", None),
    ("post", "api-consent", {"version": "x", "agreed": True}),
    ("delete", "api-consent", None),
    ("post", "logout", None),
]
STATE_IDS = [f"{method}-{name}" for method, name, _ in STATE_CHANGING]


@pytest.mark.parametrize(("method", "name", "body"), STATE_CHANGING, ids=STATE_IDS)
def test_session_request_without_csrf_token_is_403(page_session, method, name, body):
    kwargs = {} if body is None else {"data": json.dumps(body), "content_type": "application/json"}
    response = getattr(page_session, method)(reverse(name), **kwargs)
    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize(("method", "name", "body"), STATE_CHANGING, ids=STATE_IDS)
def test_session_request_with_the_csrf_token_passes_the_check(page_session, method, name, body):
    """The same request with the page's token is not refused for CSRF (it may fail otherwise)."""
    token = page_session.cookies["csrftoken"].value
    kwargs = {} if body is None else {"data": json.dumps(body), "content_type": "application/json"}
    response = getattr(page_session, method)(reverse(name), HTTP_X_CSRFTOKEN=token, **kwargs)
    assert b"CSRF" not in response.content
    assert response.status_code != 403 or name == "voiceprint-train"


def test_login_form_is_csrf_protected(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": "x"})
    assert response.status_code == 403


def test_legacy_verbs_ignore_the_session_cookie(page_session, corpus):
    """The root PUT /train|/test|/score take a token or basic auth only: a cookie riding
    along from a page gets nowhere, so they need no CSRF token."""
    for path in ("/train", "/test", "/score"):
        response = page_session.put(path, data="{}", content_type="application/json")
        assert response.status_code == 401, path


def test_token_requests_need_no_csrf_token(enrolled_alice):
    consent(enrolled_alice)
    response = token_client(enrolled_alice).post(reverse("challenge-list"))
    assert response.status_code == 201


# --------------------------------------------------------------------------------------------------
# CORS: no grant to a foreign origin


@pytest.mark.parametrize("path", ["/api/v1/feature-contract/", "/api/v1/challenges/", "/"])
def test_foreign_origin_gets_no_cors_grant(client, db, path):
    response = client.get(path, HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    preflight = client.options(
        path,
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Credentials" not in preflight


def test_api_docs_load_their_scripts_from_this_site(alice):
    """Swagger UI comes from npm (served by us) and its init script from a same-origin URL."""
    from django.contrib.staticfiles import finders

    client = Client()
    client.force_login(alice)
    html = client.get(reverse("swagger-ui")).content.decode()
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert len(sources) == 3
    for src in sources[:2]:
        name = src.removeprefix("/static/")
        assert finders.find(name), src
    init = client.get(sources[2].replace("&amp;", "&"))
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in init.content


def test_browsable_api_pages_carry_the_csp_and_only_local_scripts(alice):
    client = Client()
    client.force_login(alice)
    response = client.get(reverse("voiceprint"), HTTP_ACCEPT="text/html")
    assert response["Content-Type"].startswith("text/html")
    assert _directives(response["Content-Security-Policy"])["script-src"] == ["'self'"]
    html = response.content.decode()
    scripts = [t for t in re.findall(r"<script\b[^>]*>", html) if "application/json" not in t]
    assert scripts
    assert all(re.search(r'src="/static/', t) for t in scripts)
