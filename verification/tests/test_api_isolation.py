"""Authentication and ownership for every endpoint: anonymous callers get 401, and alice's
requests never read or change bob's data (attempts and challenges: see their own test files)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from verification.models import Challenge, EnrollmentUtterance, SpeakerModel, UtterancePurpose
from verification.tests.conftest import consent, enroll, token_client
from verification.tests.factories import GENUINE, IMPOSTOR, payload

ENDPOINTS = [
    ("get", "voiceprint", []),
    ("delete", "voiceprint", []),
    ("post", "voiceprint-train", []),
    ("put", "voiceprint-train", []),
    ("post", "voiceprint-test", []),
    ("put", "voiceprint-test", []),
    ("post", "voiceprint-score", []),
    ("put", "voiceprint-score", []),
    ("post", "challenge-list", []),
    ("get", "attempt-list", []),
    ("get", "attempt-detail", [1]),
    ("put", "legacy-train", []),
    ("put", "legacy-test", []),
    ("put", "legacy-score", []),
]


@pytest.mark.parametrize(("method", "name", "args"), ENDPOINTS)
def test_anonymous_caller_gets_401(api, db, method, name, args):
    response = getattr(api, method)(reverse(name, args=args), {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "name", "args"), ENDPOINTS)
def test_a_bad_token_gets_401(api, db, method, name, args):
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = getattr(api, method)(reverse(name, args=args), {}, format="json")
    assert response.status_code == 401


def test_status_shows_only_the_callers_enrollment(alice_api, alice, bob, ubm, corpus):
    enroll(bob, corpus, speaker=IMPOSTOR)
    body = alice_api.get(reverse("voiceprint")).json()
    assert body["trained"] is False
    assert set(body["utterances_per_digit"].values()) == {0}


def test_train_stores_for_the_caller_only(alice_api, consenting_alice, consenting_bob, corpus):
    alice_api.post(
        reverse("voiceprint-train"), payload(corpus.utterance(GENUINE, 0, 0)), format="json"
    )
    assert EnrollmentUtterance.objects.filter(user=consenting_alice).count() == 1
    assert not EnrollmentUtterance.objects.filter(user=consenting_bob).exists()


def test_test_cannot_use_another_users_model(bob_api, enrolled_alice, bob, corpus):
    consent(bob)
    response = bob_api.post(
        reverse("voiceprint-test"), payload(corpus.utterance(GENUINE, 1, 30)), format="json"
    )
    assert response.status_code == 409
    assert not EnrollmentUtterance.objects.filter(user=bob).exists()
    assert not EnrollmentUtterance.objects.filter(
        user=enrolled_alice, purpose=UtterancePurpose.TEST
    ).exists()


def test_delete_leaves_other_users_voiceprints_alone(alice_api, enrolled_alice, bob, corpus):
    enroll(bob, corpus, speaker=IMPOSTOR)
    bobs_blob = bytes(bob.speaker_model.blob)
    assert alice_api.delete(reverse("voiceprint")).status_code == 204
    assert not SpeakerModel.objects.filter(user=enrolled_alice).exists()
    assert bytes(SpeakerModel.objects.get(user=bob).blob) == bobs_blob
    assert EnrollmentUtterance.objects.filter(user=bob).count() == 30


def test_challenge_needs_the_callers_own_voiceprint(bob_api, enrolled_alice, bob):
    assert bob_api.post(reverse("challenge-list")).status_code == 409
    assert not Challenge.objects.filter(user=bob).exists()


def test_delete_leaves_other_users_challenges_open(alice_api, enrolled_alice, bob, corpus):
    enroll(bob, corpus, speaker=IMPOSTOR)
    bobs = token_client(bob).post(reverse("challenge-list")).json()["id"]
    alice_api.delete(reverse("voiceprint"))
    assert Challenge.objects.get(nonce=bobs).used_at is None


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/voiceprint/train", 400, "utterance.feature_version"),
        ("/api/v1/voiceprint/test", 400, "utterance.feature_version"),
        ("/api/v1/voiceprint/score", 400, "challenge"),
    ],
)
def test_a_body_posted_without_the_trailing_slash_reaches_the_endpoint(
    alice_token, consenting_alice, path, status, field
):
    # APPEND_SLASH cannot redirect a POST body (DEBUG raises a 500; a 301 drops the body).
    response = alice_token.post(path, {}, format="json")
    assert response.status_code == status
    assert response.json()["field"] == field


def test_a_challenge_posted_without_the_trailing_slash_is_issued(alice_token, enrolled_alice):
    response = alice_token.post("/api/v1/challenges")
    assert response.status_code == 201
    assert Challenge.objects.get(nonce=response.json()["id"]).user == enrolled_alice
