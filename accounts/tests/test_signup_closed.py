"""ACCOUNTS_SIGNUP_OPEN=false: administrators create the accounts; nobody signs up."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

NEW_ACCOUNT = {
    "username": "mallory",
    "email": "mallory@example.com",
    "password1": "a long enough passphrase 42",
    "password2": "a long enough passphrase 42",
}


@pytest.fixture
def closed(settings):
    settings.ACCOUNTS_SIGNUP_OPEN = False


def test_the_sign_up_page_says_it_is_closed(client, db, closed):
    response = client.get(reverse("signup"))

    assert response.status_code == 403
    assert "Sign-up is closed" in response.content.decode()


def test_a_sign_up_post_creates_nobody(client, db, closed):
    response = client.post(reverse("signup"), NEW_ACCOUNT)

    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="mallory").exists()


@pytest.mark.parametrize("page", ["home", "login"])
def test_no_page_links_to_sign_up(client, db, closed, page):
    body = client.get(reverse(page)).content.decode()

    assert reverse("signup") not in body
    assert reverse("login") in body


@pytest.mark.parametrize("page", ["home", "login"])
def test_open_by_default(client, db, page):
    assert reverse("signup") in client.get(reverse(page)).content.decode()
    response = client.post(reverse("signup"), NEW_ACCOUNT)
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="mallory").exists()


def test_an_administrator_still_creates_accounts(admin_client, closed):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {"username": "new-member", "password1": "x" * 20 + "7Qz", "password2": "x" * 20 + "7Qz"},
    )

    assert response.status_code == 302
    assert get_user_model().objects.filter(username="new-member").exists()
