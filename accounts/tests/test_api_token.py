"""The API token's lifecycle: revoked by its owner (API or account page) and by a new password."""

import re

import pytest
from django.contrib.auth.hashers import make_password
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import PASSWORD

NEW_PASSWORD = PASSWORD + " renewed"


@pytest.fixture
def token(alice) -> Token:
    return Token.objects.create(user=alice)


def _with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_delete_revokes_the_callers_token(token):
    client = _with_token(token.key)

    assert client.delete(reverse("api-token")).status_code == 204

    assert not Token.objects.filter(pk=token.pk).exists()
    assert client.get(reverse("api-me")).status_code == 401


def test_delete_leaves_other_users_tokens(token, bob):
    bobs = Token.objects.create(user=bob)

    _with_token(token.key).delete(reverse("api-token"))

    assert _with_token(bobs.key).get(reverse("api-me")).status_code == 200


def test_delete_needs_authentication(api, token):
    response = api.delete(reverse("api-token"))

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert Token.objects.filter(pk=token.pk).exists()


def test_delete_by_session_needs_the_csrf_token(alice, token):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.delete(reverse("api-token")).status_code == 403
    assert Token.objects.filter(pk=token.pk).exists()


def test_changing_the_password_revokes_the_token(client, alice, token):
    client.force_login(alice)
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert not Token.objects.filter(user=alice).exists()
    assert _with_token(token.key).get(reverse("api-me")).status_code == 401


def test_resetting_the_password_revokes_the_token(client, alice, token):
    client.post(reverse("password_reset"), {"email": alice.email})
    link = re.search(r"/accounts/reset/\S+/\S+/", mail.outbox[0].body).group(0)
    form_url = client.get(link)["Location"]  # Django swaps the token for a session

    response = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert response.status_code == 302
    assert not Token.objects.filter(user=alice).exists()


def test_an_admin_setting_a_password_revokes_the_token(alice, token):
    alice.set_password(NEW_PASSWORD)
    alice.save()

    assert not Token.objects.filter(user=alice).exists()


def test_other_saves_keep_the_token(alice, token):
    alice.email = "alice@elsewhere.example"
    alice.save()

    assert Token.objects.filter(user=alice).exists()


def test_a_hash_upgrade_at_sign_in_keeps_the_token(alice, token, settings):
    """Django re-hashes a password under the preferred hasher at sign-in: the same password."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    type(alice).objects.filter(pk=alice.pk).update(password=make_password(PASSWORD, hasher="md5"))

    response = Client().post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302  # signed in

    alice.refresh_from_db()
    assert alice.password.startswith("pbkdf2_sha256$")
    assert Token.objects.filter(pk=token.pk).exists()


def test_account_page_shows_and_revokes_the_token(client, alice, token):
    client.force_login(alice)
    page = client.get(reverse("profile")).content.decode()
    assert "You have an API token, issued" in page
    assert reverse("api-token-revoke") in page

    response = client.post(reverse("api-token-revoke"), follow=True)

    assert response.redirect_chain == [(reverse("profile"), 302)]
    body = response.content.decode()
    assert "Your API token is revoked" in body
    assert "You have no API token." in body
    assert not Token.objects.filter(user=alice).exists()


def test_revoking_from_the_page_takes_a_post_with_csrf(alice, token):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.get(reverse("api-token-revoke")).status_code == 405
    assert client.post(reverse("api-token-revoke")).status_code == 403
    assert Token.objects.filter(pk=token.pk).exists()


def test_revoking_from_the_page_needs_sign_in(client, token):
    response = client.post(reverse("api-token-revoke"))

    assert response.status_code == 302
    assert reverse("login") in response["Location"]
    assert Token.objects.filter(pk=token.pk).exists()
