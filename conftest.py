"""Shared fixtures: personas (alice owns, bob is another user, staff reviews) and API clients."""

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 at Django's production cost takes ~1 s per user on a busy CI box; tests check
    authentication, not hashing strength (production keeps the default hashers)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", password=PASSWORD)


@pytest.fixture
def consenting_alice(alice):
    """alice with a standing voice consent to the current text (enrollment requires it)."""
    from accounts.consent import CONSENT_VERSION, voice_consent_give

    voice_consent_give(user=alice, version=CONSENT_VERSION)
    return alice


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", password=PASSWORD)


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def alice_api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def bob_api(bob):
    client = APIClient()
    client.force_authenticate(bob)
    return client


@pytest.fixture
def staff_api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client
