"""Fixtures of the verification tests: the shipped background model, real corpus features, an
enrolled alice, token-authenticated clients.

Features are computed from ``../shared/data/fsdd`` (``SPEAKERAUTH_CORPUS_DIR``) by
``features.wav_to_utterance``, exactly what a browser sends for those recordings, once per test
session. Without the corpus or the shipped UBM file the tests that need them skip locally and
FAIL when ``CI`` is set (as ``test_parity.py`` does for Node).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from verification import services
from verification.management.commands.install_default_ubm import DEFAULT_PATH
from verification.models import BackgroundModel
from verification.tests.availability import require
from verification.tests.factories import ENROLL_PER_DIGIT, GENUINE, FsddCorpus


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """DRF throttles count in the default cache; user ids repeat across tests on SQLite."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def corpus() -> FsddCorpus:
    """fsdd recordings as browser features (computed on first use, cached for the session)."""
    folder = Path(settings.SPEAKERAUTH_CORPUS_DIR) / "fsdd"
    present = (folder / f"0_{GENUINE}_0.wav").is_file()
    require(present, f"corpus folder {folder} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    return FsddCorpus(folder)


@pytest.fixture
def ubm(db) -> BackgroundModel:
    """The shipped default background model, installed (the way install_default_ubm does it)
    and active."""
    require(DEFAULT_PATH.is_file(), f"{DEFAULT_PATH} is missing (the engine ships it)")
    row, _ = services.background_model_install(blob=DEFAULT_PATH.read_bytes(), activate=True)
    return row


def consent(user):
    """Give ``user`` a standing consent to the current text (enrollment needs it)."""
    from accounts.consent import CONSENT_VERSION, voice_consent_give

    voice_consent_give(user=user, version=CONSENT_VERSION)
    return user


@pytest.fixture
def consenting_bob(bob):
    return consent(bob)


def enroll(user, corpus: FsddCorpus, speaker: str = GENUINE):
    """Enroll ``user`` with ``speaker``'s first ENROLL_PER_DIGIT recordings of every digit."""
    consent(user)
    model = services.voiceprint_train(
        user=user, utterances=corpus.enrollment(speaker, ENROLL_PER_DIGIT)
    )
    assert model is not None
    return user


@pytest.fixture
def enrolled_alice(alice, ubm, corpus):
    """alice enrolled with GENUINE's first ENROLL_PER_DIGIT recordings of every digit."""
    return enroll(alice, corpus)


def token_client(user) -> APIClient:
    """A client authenticating the way scripts do: ``Authorization: Token <key>``."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alice_token(alice) -> APIClient:
    return token_client(alice)


@pytest.fixture
def bob_token(bob) -> APIClient:
    return token_client(bob)
