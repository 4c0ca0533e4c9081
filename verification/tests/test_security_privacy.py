"""Privacy: export returns every personal record, deleting the voiceprint leaves no features of
the user anywhere in the database while the audit rows stay, verifying afterwards answers "not
enrolled", and features never reach the application logs (not even SQL debug logging).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from django.apps import apps
from django.db import connection, models
from django.urls import reverse
from rest_framework.authtoken.models import Token

from verification import services
from verification.features import Utterance, utterance_payload
from verification.models import (
    AuditEvent,
    Challenge,
    EnrollmentUtterance,
    ReplayFingerprint,
    SpeakerModel,
    VerificationAttempt,
)
from verification.tests.conftest import consent, enroll, token_client
from verification.tests.factories import (
    ANSWER_INDEX,
    GENUINE,
    IMPOSTOR,
    answer_challenge,
    payload,
    prompt,
)

EXPORT = reverse("api-me-export")
DIGITS = "31452"
CLIENT = services.ClientInfo(ip="192.0.2.44", user_agent="privacy-test")


def _verify(user, corpus, index: int = ANSWER_INDEX) -> str:
    return answer_challenge(user, corpus, DIGITS, client=CLIENT, index=index).nonce


@pytest.fixture
def alice_with_history(enrolled_alice, corpus):
    """Enrolled, with held-out test utterances, two attempts, and one open challenge."""
    services.test_utterances_score(
        user=enrolled_alice, utterances=[corpus.utterance(GENUINE, 7, 40)]
    )
    _verify(enrolled_alice, corpus)
    _verify(enrolled_alice, corpus, index=ANSWER_INDEX + 1)
    services.challenge_create(user=enrolled_alice)
    return enrolled_alice


# --------------------------------------------------------------------------------------------------
# Export


def test_export_needs_authentication(api, db):
    assert api.get(EXPORT).status_code == 401


def test_export_holds_every_personal_record(alice_with_history, bob, corpus):
    enroll(bob, corpus, speaker=IMPOSTOR)
    _verify(bob, corpus)
    alice = alice_with_history
    data = token_client(alice).get(EXPORT).json()

    assert data["account"]["username"] == "alice"
    assert data["account"]["email"] == alice.email
    assert [c["text_version"] for c in data["consents"]] == list(
        alice.voice_consents.values_list("text_version", flat=True)
    )
    rows = EnrollmentUtterance.objects.filter(user=alice).order_by("created_at", "id")
    assert [u["id"] for u in data["enrollment_utterances"]] == [r.pk for r in rows]
    assert {u["purpose"] for u in data["enrollment_utterances"]} == {"enroll", "test"}
    assert data["speaker_model"]["version"] == SpeakerModel.objects.get(user=alice).version
    assert len(data["challenges"]) == Challenge.objects.filter(user=alice).count() == 3
    attempts = VerificationAttempt.objects.filter(user=alice)
    assert sorted(a["id"] for a in data["verification_attempts"]) == sorted(
        attempts.values_list("pk", flat=True)
    )
    assert data["lockout"] is not None
    assert len(data["replay_fingerprints"]) == ReplayFingerprint.objects.filter(user=alice).count()
    assert len(data["audit_events"]) == AuditEvent.objects.filter(user=alice).count() > 0


def test_export_features_are_the_stored_features(alice_with_history):
    data = token_client(alice_with_history).get(EXPORT).json()
    first = data["enrollment_utterances"][0]
    stored = EnrollmentUtterance.objects.get(pk=first["id"]).to_utterance()
    assert np.array_equal(np.array(first["mel_bands"], dtype=np.float32), stored.mel_bands)
    assert np.array_equal(np.array(first["rms"], dtype=np.float32), stored.rms)


def test_export_holds_nothing_of_another_user(alice_with_history, bob, corpus):
    enroll(bob, corpus, speaker=IMPOSTOR)
    _verify(bob, corpus)
    text = token_client(alice_with_history).get(EXPORT).content.decode()
    assert "bob" not in text
    bobs_ids = set(VerificationAttempt.objects.filter(user=bob).values_list("pk", flat=True))
    data = json.loads(text)
    assert not bobs_ids & {a["id"] for a in data["verification_attempts"]}


def test_export_leaks_no_secrets(alice_with_history):
    alice = alice_with_history
    client = token_client(alice)
    text = client.get(EXPORT).content.decode()
    assert Token.objects.get(user=alice).key not in text
    assert alice.password not in text
    for nonce in Challenge.objects.filter(user=alice).values_list("nonce", flat=True):
        assert nonce not in text
    assert '"score"' not in text


def test_export_is_offered_as_a_download(alice_with_history):
    response = token_client(alice_with_history).get(EXPORT)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]


# --------------------------------------------------------------------------------------------------
# Delete


def _feature_traces(utterances: list[Utterance]) -> tuple[list[bytes], list[str]]:
    """Byte chunks and decimal spellings by which an utterance could survive in a table."""
    chunks, words = [], []
    for utt in utterances:
        packed = EnrollmentUtterance.pack(utt)
        chunks.append(packed[400:464])  # 16 float32 values of the middle of the matrix
        chunks.append(utt.mel_bands.astype("<f4").tobytes()[200:264])
        words.append(repr(float(utt.mel_bands[3, 7]))[:9])
    return chunks, words


def _database_holds(chunks: list[bytes], words: list[str]) -> list[str]:
    """Every model field of every row, searched for the traces: where they are found."""
    found = []
    for model in apps.get_models():
        for row in model._base_manager.all():
            for field in model._meta.concrete_fields:
                value = getattr(row, field.attname)
                if value is None:
                    continue
                if isinstance(field, models.BinaryField):
                    raw = bytes(value)
                    if any(c in raw for c in chunks):
                        found.append(f"{model.__name__}.{field.name}")
                else:
                    text = json.dumps(value, default=str)
                    if any(w in text for w in words):
                        found.append(f"{model.__name__}.{field.name}")
    return found


def test_delete_leaves_no_features_of_the_user_in_any_table(alice_with_history, corpus):
    alice = alice_with_history
    rows = EnrollmentUtterance.objects.filter(user=alice)
    traces = _feature_traces([r.to_utterance() for r in rows])
    assert _database_holds(*traces)  # the search finds them while they exist

    response = token_client(alice).delete(reverse("voiceprint"))
    assert response.status_code == 204
    assert _database_holds(*traces) == []
    assert not EnrollmentUtterance.objects.filter(user=alice).exists()
    assert not SpeakerModel.objects.filter(user=alice).exists()
    assert not ReplayFingerprint.objects.filter(user=alice).exists()
    assert not Challenge.objects.filter(user=alice, used_at__isnull=True).exists()
    # Only challenges an audit row points at remain (digits and times, no features).
    assert not Challenge.objects.filter(user=alice, attempts__isnull=True).exists()


def test_delete_keeps_the_audit_rows(alice_with_history):
    alice = alice_with_history
    before = list(VerificationAttempt.objects.filter(user=alice).values_list("pk", "entry_hash"))
    token_client(alice).delete(reverse("voiceprint"))
    after = list(VerificationAttempt.objects.filter(user=alice).values_list("pk", "entry_hash"))
    assert after == before
    assert AuditEvent.objects.filter(user=alice, kind="voiceprint_deleted").exists()


def test_verifying_after_delete_answers_not_enrolled(alice_with_history, corpus):
    alice = alice_with_history
    client = token_client(alice)
    old = Challenge.objects.filter(user=alice, used_at__isnull=True).first().nonce
    client.delete(reverse("voiceprint"))
    challenge = client.post(reverse("challenge-list"))
    assert challenge.status_code == 409
    assert challenge.json()["code"] == "not_enrolled"
    body = {"challenge": old, "utterances": [payload(u) for u in corpus.answer(GENUINE, DIGITS)]}
    response = client.post(reverse("voiceprint-score"), body, format="json")
    assert response.json()["decision"] == "reject"
    assert response.json()["reason"] == "not_enrolled"


# --------------------------------------------------------------------------------------------------
# Logs


def _distinctive(utt: Utterance, value: float) -> Utterance:
    """``utt`` with one loud cell set to a value whose digits appear nowhere else."""
    mel = utt.mel_bands.copy()
    frame = int(np.argmax(utt.rms))
    mel[frame, 10] = value
    return Utterance(mel_bands=mel, rms=utt.rms, digit=utt.digit)


MARKS = ("4.2424242", "4.1313131", "3.9191919", "3.8282828")


def test_features_never_reach_the_logs_at_debug_level(alice, ubm, corpus, caplog, settings):
    settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT = 1
    consent(alice)
    client = token_client(alice)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's own loggers stop at INFO
    connection.force_debug_cursor = True  # SQL debug logging, as with DEBUG=True
    try:
        enrollment = [
            utterance_payload(_distinctive(corpus.utterance(GENUINE, d, 0), float(MARKS[0])))
            for d in range(10)
        ]
        assert (
            client.post(
                reverse("voiceprint-train"), {"utterances": enrollment}, format="json"
            ).status_code
            == 201
        )
        held_out = utterance_payload(_distinctive(corpus.utterance(GENUINE, 5, 30), 4.1313131))
        assert client.post(reverse("voiceprint-test"), held_out, format="json").status_code == 201
        nonce = client.post(reverse("challenge-list")).json()["id"]
        prompt(nonce, DIGITS)
        answer = [
            utterance_payload(_distinctive(u, float(MARKS[2])))
            for u in corpus.answer(GENUINE, DIGITS)
        ]
        score = client.post(
            reverse("voiceprint-score"), {"challenge": nonce, "utterances": answer}, format="json"
        )
        assert score.status_code == 200
        bad = {**held_out, "rms": [float(MARKS[3])] * len(held_out["rms"])}
        assert client.post(reverse("voiceprint-test"), bad, format="json").status_code == 400
    finally:
        connection.force_debug_cursor = False
    assert any(r.name == "django.db.backends" for r in caplog.records)  # SQL was logged
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {getattr(r, 'sql', '')} {getattr(r, 'params', '')}"
        for r in caplog.records
    )
    for mark in MARKS:
        assert mark[:6] not in logged
    packed = EnrollmentUtterance.objects.filter(user=alice).first().features
    assert bytes(packed)[:32].hex() not in logged
