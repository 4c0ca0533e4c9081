import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from conftest import PASSWORD


@pytest.mark.parametrize("name", ["home", "signup", "login", "password_reset"])
def test_public_pages_render(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert b"SpeakerAuth" in response.content


def test_signup_creates_user_and_signs_in(client, db):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="carol").exists()
    assert client.get(reverse("profile")).status_code == 200


def test_signup_rejects_mismatched_passwords(client, db):
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="carol").exists()


def test_login_and_logout(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("profile")).context["user"] == alice
    client.post(reverse("logout"))
    assert client.get(reverse("profile")).status_code == 302


def test_login_with_wrong_password_fails(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated


def test_profile_requires_login(client, db):
    response = client.get(reverse("profile"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_password_change(client, alice):
    client.force_login(alice)
    new = PASSWORD + " 2"
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new)


def test_password_reset_sends_email(client, alice):
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "alice" in mail.outbox[0].body


def test_navigation_shows_signed_in_user(client, alice):
    client.force_login(alice)
    body = client.get(reverse("home")).content.decode()
    assert "alice" in body
    for name in ("enroll", "verify", "history"):
        assert reverse(name) in body
