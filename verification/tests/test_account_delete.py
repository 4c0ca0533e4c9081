"""Deleting an account (account page, password asked again): the voiceprint goes, the token and
sessions end, the person's identifiers are gone, and the audit log keeps its chain."""

from __future__ import annotations

from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import VoiceConsent
from conftest import PASSWORD
from verification import services
from verification.models import (
    AuditEvent,
    EnrollmentUtterance,
    ReplayFingerprint,
    SpeakerModel,
    VerificationAttempt,
)
from verification.tests.factories import answer_challenge

DELETE = reverse("account-delete")
CLIENT = services.ClientInfo(ip="192.0.2.61", user_agent="deletion-test")


@pytest.fixture
def alice_signed_in(enrolled_alice, corpus):
    """Enrolled, one attempt behind her, an API token and a browser session."""
    answer_challenge(enrolled_alice, corpus, "31452", client=CLIENT)
    Token.objects.create(user=enrolled_alice)
    browser = Client()
    browser.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    return enrolled_alice, browser


def test_the_page_asks_for_the_password(alice_signed_in):
    alice, browser = alice_signed_in
    page = browser.get(DELETE)

    assert page.status_code == 200
    assert 'type="password"' in page.content.decode()
    assert reverse("account-delete") in browser.get(reverse("profile")).content.decode()


def test_a_wrong_password_deletes_nothing(alice_signed_in):
    alice, browser = alice_signed_in

    response = browser.post(DELETE, {"password": "not it"})

    assert response.status_code == 200
    assert "That is not your password." in response.content.decode()
    alice.refresh_from_db()
    assert alice.username == "alice"
    assert alice.is_active
    assert SpeakerModel.objects.filter(user=alice).exists()
    assert Token.objects.filter(user=alice).exists()
    # The guess counts towards the password lockout like any other.
    assert AccessAttempt.objects.filter(username="alice").exists()


def test_deleting_removes_the_person_and_keeps_the_audit_chain(alice_signed_in):
    alice, browser = alice_signed_in
    token = Token.objects.get(user=alice).key
    attempts = list(VerificationAttempt.objects.filter(user=alice).values_list("pk", "entry_hash"))

    response = browser.post(DELETE, {"password": PASSWORD}, follow=True)

    assert response.redirect_chain == [(reverse("home"), 302)]
    assert "Your account is deleted" in response.content.decode()
    alice.refresh_from_db()
    assert alice.username.startswith(f"deleted-{alice.pk}-")
    assert (alice.email, alice.first_name, alice.last_name) == ("", "", "")
    assert not alice.is_active
    assert not alice.has_usable_password()
    for model in (EnrollmentUtterance, SpeakerModel, ReplayFingerprint, Token):
        assert not model.objects.filter(user=alice).exists(), model.__name__
    assert not VoiceConsent.objects.filter(user=alice, withdrawn_at__isnull=True).exists()
    assert VoiceConsent.objects.filter(user=alice).exists()  # the history of what was agreed
    kinds = list(AuditEvent.objects.filter(user=alice).values_list("kind", flat=True)[:2])
    assert kinds == ["account_deleted", "voiceprint_deleted"]
    after = list(VerificationAttempt.objects.filter(user=alice).values_list("pk", "entry_hash"))
    assert after == attempts
    call_command("verify_audit", stdout=StringIO())
    # Signed out everywhere: the old session, the old token, the old password.
    assert browser.get(reverse("profile")).status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(reverse("api-me")).status_code == 401
    login = Client().post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert login.status_code == 200  # the form again: no such account


def test_a_taken_anonymous_name_does_not_block_deletion(alice_signed_in):
    alice, browser = alice_signed_in
    get_user_model().objects.create_user(f"deleted-{alice.pk}", password="x" * 20)

    response = browser.post(DELETE, {"password": PASSWORD})

    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active


def test_the_username_is_free_again(alice_signed_in):
    alice, browser = alice_signed_in
    browser.post(DELETE, {"password": PASSWORD})

    response = Client().post(
        reverse("signup"),
        {
            "username": "alice",
            "email": "alice@example.org",
            "password1": "a fresh passphrase 91",
            "password2": "a fresh passphrase 91",
        },
    )

    assert response.status_code == 302
    assert get_user_model().objects.filter(username="alice").exclude(pk=alice.pk).exists()


def test_deleting_needs_a_signed_in_post(client, alice):
    assert client.get(DELETE).status_code == 302
    assert client.post(DELETE, {"password": PASSWORD}).status_code == 302
    alice.refresh_from_db()
    assert alice.is_active


def test_staff_delete_an_account_from_the_admin(alice_signed_in, admin_client, admin_user):
    alice, _ = alice_signed_in
    changelist = reverse("admin:accounts_user_changelist")
    actions = admin_client.get(changelist).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions if name] == ["delete_and_anonymise"]

    response = admin_client.post(
        changelist,
        {"action": "delete_and_anonymise", "_selected_action": [alice.pk, admin_user.pk]},
        follow=True,
    )

    body = response.content.decode()
    assert "1 account(s) deleted and anonymised." in body
    assert "1 skipped (your own, or already deleted)." in body
    alice.refresh_from_db()
    assert alice.username.startswith(f"deleted-{alice.pk}-")
    assert not SpeakerModel.objects.filter(user=alice).exists()
    event = AuditEvent.objects.get(user=alice, kind="account_deleted")
    assert event.actor == admin_user
    admin_user.refresh_from_db()
    assert admin_user.is_active
