"""Voice consent: the API (GET text, POST agreement, DELETE withdrawal) and the enrollment gate."""

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.consent import CONSENT_VERSION, has_current_consent, voice_consent_give
from accounts.models import VoiceConsent
from verification import features

URL = "/api/v1/consent/"
TRAIN_URL = "/api/v1/voiceprint/train/"


def _utterance_payload() -> dict:
    """A valid enrollment utterance (seeded noise burst: the gate runs before any engine work)."""
    rng = np.random.default_rng(5)
    signal = np.zeros(8000)
    signal[2000:6000] = 0.1 * rng.standard_normal(4000)
    mel, rms = features.meyda_features(signal)
    utt = features.Utterance(mel_bands=mel.astype(np.float32), rms=rms.astype(np.float32), digit=3)
    return features.utterance_payload(utt)


def test_get_shows_current_text_and_not_given(alice_api):
    response = alice_api.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == CONSENT_VERSION
    assert "voiceprint" in body["text"]
    assert body["given"] is False
    assert body["given_at"] is None


def test_post_records_consent_to_current_version(alice_api, alice):
    response = alice_api.post(URL, {"version": CONSENT_VERSION, "agreed": True}, format="json")
    assert response.status_code == 201
    assert response.json()["given"] is True
    row = VoiceConsent.objects.get(user=alice)
    assert row.text_version == CONSENT_VERSION
    assert row.withdrawn_at is None


def test_post_twice_keeps_one_standing_consent(alice_api, alice):
    for _ in range(2):
        alice_api.post(URL, {"version": CONSENT_VERSION, "agreed": True}, format="json")
    assert VoiceConsent.objects.filter(user=alice).count() == 1


def test_post_with_old_version_is_400_naming_version(alice_api, alice):
    response = alice_api.post(URL, {"version": "2020-01-01", "agreed": True}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "version"
    assert not VoiceConsent.objects.filter(user=alice).exists()


@pytest.mark.parametrize("agreed", [False, None, "yes", 1])
def test_post_without_explicit_yes_is_400_naming_agreed(alice_api, alice, agreed):
    body = {"version": CONSENT_VERSION}
    if agreed is not None:
        body["agreed"] = agreed
    response = alice_api.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "agreed"
    assert not VoiceConsent.objects.filter(user=alice).exists()


def test_anonymous_caller_gets_401(api, db):
    assert api.get(URL).status_code == 401


def test_consent_is_per_user(alice_api, bob_api):
    alice_api.post(URL, {"version": CONSENT_VERSION, "agreed": True}, format="json")
    assert bob_api.get(URL).json()["given"] is False


def test_delete_withdraws_consent(consenting_alice, alice_api):
    response = alice_api.delete(URL)
    assert response.status_code == 204
    assert not has_current_consent(user=consenting_alice)
    assert VoiceConsent.objects.get(user=consenting_alice).withdrawn_at is not None


def test_consent_to_older_version_is_not_current(alice):
    VoiceConsent.objects.create(user=alice, text_version="2000-01-01")
    assert not has_current_consent(user=alice)


def test_database_refuses_two_standing_consents_to_one_version(alice):
    voice_consent_give(user=alice, version=CONSENT_VERSION)
    with pytest.raises(IntegrityError), transaction.atomic():
        VoiceConsent.objects.create(user=alice, text_version=CONSENT_VERSION)


def test_database_refuses_withdrawal_before_consent(alice):
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        VoiceConsent.objects.create(
            user=alice,
            text_version=CONSENT_VERSION,
            given_at=now,
            withdrawn_at=now - timezone.timedelta(seconds=1),
        )


def test_train_without_consent_is_403_and_stores_nothing(alice_api, alice):
    response = alice_api.post(TRAIN_URL, _utterance_payload(), format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "consent_required"
    assert "/api/v1/consent/" in body["detail"]
    assert not alice.enrollment_utterances.exists()


def test_train_after_withdrawal_is_403(consenting_alice, alice_api):
    alice_api.delete(URL)
    response = alice_api.post(TRAIN_URL, _utterance_payload(), format="json")
    assert response.status_code == 403


def test_train_with_consent_stores_the_utterance(consenting_alice, alice_api):
    response = alice_api.post(TRAIN_URL, _utterance_payload(), format="json")
    assert response.status_code == 201
    assert response.json()["utterances_per_digit"]["3"] == 1


def test_post_without_trailing_slash_records_consent(alice_api, alice):
    response = alice_api.post(
        "/api/v1/consent", {"version": CONSENT_VERSION, "agreed": True}, format="json"
    )
    assert response.status_code == 201
    assert has_current_consent(user=alice)
