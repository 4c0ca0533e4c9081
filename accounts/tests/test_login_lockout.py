"""Password guessing is refused after ACCOUNTS_LOGIN_FAILURES failures (django-axes), on every
path that checks a password: the sign-in form, the admin's, the token endpoint, HTTP Basic."""

import base64
import json
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from conftest import PASSWORD

LIMIT = 3
COOLOFF = 15 * 60


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def _token(api, password, *, username="alice", ip="203.0.113.7", **headers):
    return api.post(
        reverse("api-token"),
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=ip,
        **headers,
    )


def _lock(api, **kwargs):
    """LIMIT failures: the last is already refused as a lockout."""
    for _ in range(LIMIT - 1):
        assert _token(api, "wrong", **kwargs).status_code == 400
    assert _token(api, "wrong", **kwargs).status_code == 429


def test_token_endpoint_refuses_the_right_password_once_locked(api, alice):
    _lock(api)
    response = _token(api, PASSWORD)
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked_out"
    assert "15 minutes" in response.json()["detail"]
    assert response["Retry-After"] == str(COOLOFF)
    assert not Token.objects.filter(user=alice).exists()


def test_below_the_limit_the_password_still_works(api, alice):
    for _ in range(LIMIT - 1):
        assert _token(api, "wrong").status_code == 400
    assert _token(api, PASSWORD).status_code == 200


def test_a_success_clears_the_count(api, alice):
    for _ in range(LIMIT - 1):
        _token(api, "wrong")
    assert _token(api, PASSWORD).status_code == 200
    for _ in range(LIMIT - 1):
        _token(api, "wrong")
    assert _token(api, PASSWORD).status_code == 200


def test_the_lock_is_per_username_and_address_by_default(api, alice, bob):
    _lock(api)
    assert _token(api, PASSWORD).status_code == 429
    # The owner elsewhere, and another account from the same address, are not locked out.
    assert _token(api, PASSWORD, ip="198.51.100.1").status_code == 200
    assert _token(api, PASSWORD, username="bob").status_code == 200


def test_lock_by_username_stops_guessing_from_many_addresses(api, alice, settings):
    settings.AXES_LOCKOUT_PARAMETERS = ["username"]
    for i in range(LIMIT - 1):
        assert _token(api, "wrong", ip=f"198.51.100.{i + 1}").status_code == 400
    assert _token(api, "wrong", ip="198.51.100.200").status_code == 429
    assert _token(api, PASSWORD, ip="192.0.2.99").status_code == 429


def test_the_lock_ends_after_the_cooloff(api, alice):
    _lock(api)
    assert _token(api, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=COOLOFF + 1))
    assert _token(api, PASSWORD).status_code == 200


def test_tries_during_the_lock_restart_the_cooloff(api, alice):
    _lock(api)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=COOLOFF - 5))
    assert _token(api, PASSWORD).status_code == 429  # refused, and counted
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=COOLOFF - 5))
    assert _token(api, PASSWORD).status_code == 429


def test_sign_in_form_shows_a_page(client, alice):
    url = reverse("login")
    for _ in range(LIMIT - 1):
        response = client.post(url, {"username": "alice", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    assert client.post(url, {"username": "alice", "password": "wrong"}).status_code == 429
    response = client.post(url, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert response["Retry-After"] == str(COOLOFF)
    assert b"Sign-in paused" in response.content
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("profile")).status_code == 302  # still signed out


def test_admin_sign_in_is_guarded_too(client, staff):
    url = reverse("admin:login")
    for _ in range(LIMIT):
        client.post(url, {"username": "sam", "password": "wrong"})
    response = client.post(url, {"username": "sam", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_http_basic_on_the_legacy_verbs_is_guarded(api, alice):
    def put(password):
        raw = base64.b64encode(f"alice:{password}".encode()).decode()
        return api.put(
            "/score",
            b"{}",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Basic {raw}",
            REMOTE_ADDR="203.0.113.7",
        )

    for _ in range(LIMIT - 1):
        assert put("wrong").status_code == 401
    assert put("wrong").status_code == 429
    response = put(PASSWORD)
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked_out"
    assert response["Retry-After"] == str(COOLOFF)


def test_behind_a_proxy_the_client_address_counts(api, alice, settings):
    settings.VERIFICATION_PROXY_COUNT = 1
    router = "10.0.0.1"
    _lock(api, ip=router, HTTP_X_FORWARDED_FOR="203.0.113.7")
    # Another client through the same router is not locked out...
    assert _token(api, PASSWORD, ip=router, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    # ...and the locked client cannot step out by claiming another address in front.
    spoofed = "192.0.2.1, 203.0.113.7"
    assert _token(api, PASSWORD, ip=router, HTTP_X_FORWARDED_FOR=spoofed).status_code == 429


def test_lockout_answer_sends_no_cors_headers(api, alice):
    _lock(api)
    response = _token(
        api, PASSWORD, HTTP_X_REQUESTED_WITH="XMLHttpRequest", HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 429
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_zero_failures_turns_the_lockout_off(api, alice, settings):
    settings.AXES_ENABLED = False
    for _ in range(LIMIT + 2):
        assert _token(api, "wrong").status_code == 400
    assert _token(api, PASSWORD).status_code == 200
    assert not AccessAttempt.objects.exists()


def test_a_token_issue_is_a_sign_in(api, alice):
    assert alice.last_login is None
    assert _token(api, PASSWORD).status_code == 200
    alice.refresh_from_db()
    assert alice.last_login is not None


def test_other_user_agents_do_not_reset_the_count(api, alice):
    for i in range(LIMIT - 1):
        assert _token(api, "wrong", HTTP_USER_AGENT=f"guesser/{i}").status_code == 400
    assert _token(api, "wrong", HTTP_USER_AGENT="guesser/last").status_code == 429
    assert _token(api, PASSWORD, HTTP_USER_AGENT="a browser").status_code == 429


def test_a_failed_sign_in_keeps_no_request_data(api, alice):
    """A legacy POST as ``curl --data`` sends it: features as form data, which is not kept."""
    body = json.dumps({"utterances": [{"digit": 3, "mel_bands": [[0.25] * 40] * 20}]})
    raw = base64.b64encode(b"alice:wrong").decode()
    response = api.post(
        "/train?mel_bands=1",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {raw}",
    )
    assert response.status_code == 401
    attempt = AccessAttempt.objects.get()
    assert attempt.username == "alice"
    assert attempt.get_data == ""
    assert attempt.post_data == ""


def test_counted_failures_are_in_the_owners_export(api, alice, bob):
    _token(api, "wrong", HTTP_USER_AGENT="guesser")
    _token(api, "wrong", username="bob", ip="198.51.100.9")
    api.force_authenticate(alice)
    data = api.get(reverse("api-me-export")).json()
    assert data["failed_sign_ins"] == [
        {
            "ip_address": "203.0.113.7",
            "user_agent": "guesser",
            "failures": 1,
            "last_at": AccessAttempt.objects.get(username="alice").attempt_time.isoformat(),
        }
    ]
