"""The seed's curl verbs at the site root: ``curl -XPUT --data @body.json /train|/test|/score``.

curl's ``--data`` labels the body ``application/x-www-form-urlencoded``; the tests send exactly
that. Token and HTTP Basic authentication work; a browser session does not (no CSRF exposure).
"""

from __future__ import annotations

import base64
import json

from django.urls import reverse

from conftest import PASSWORD
from verification.models import (
    Decision,
    EnrollmentUtterance,
    Reason,
    UtterancePurpose,
    VerificationAttempt,
)
from verification.tests.conftest import consent
from verification.tests.factories import GENUINE, IMPOSTOR, payload, prompt

CURL = "application/x-www-form-urlencoded"
DIGITS = "27189"


def curl_put(client, name: str, body: dict, **extra):
    return client.put(reverse(name), json.dumps(body), content_type=CURL, **extra)


def _enrollment(corpus) -> dict:
    return {"utterances": [payload(u) for u in corpus.enrollment(GENUINE)]}


def _answer(client, corpus, speaker: str = GENUINE) -> dict:
    nonce = client.post(reverse("challenge-list")).json()["id"]
    prompt(nonce, DIGITS)
    return {"challenge": nonce, "utterances": [payload(u) for u in corpus.answer(speaker, DIGITS)]}


def test_put_train_with_a_token_stores_the_utterance(alice_token, consenting_alice, corpus):
    response = curl_put(alice_token, "legacy-train", payload(corpus.utterance(GENUINE, 6, 0)))
    assert response.status_code == 201
    assert response.json()["utterances_per_digit"]["6"] == 1
    assert EnrollmentUtterance.objects.filter(user=consenting_alice, digit=6).count() == 1


def test_put_train_answers_like_the_v1_endpoint(alice_token, consenting_alice, corpus):
    body = payload(corpus.utterance(GENUINE, 6, 0))
    legacy = curl_put(alice_token, "legacy-train", body).json()
    v1 = alice_token.post(reverse("voiceprint-train"), body, format="json").json()
    assert set(legacy) == set(v1)
    assert (legacy["added"], v1["utterances_per_digit"]["6"]) == (1, 2)


def test_put_train_with_a_json_content_type(alice_token, consenting_alice, corpus):
    body = payload(corpus.utterance(GENUINE, 6, 0))
    response = alice_token.put(reverse("legacy-train"), body, format="json")
    assert response.status_code == 201


def test_put_train_with_basic_auth(api, consenting_alice, corpus):
    credentials = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    response = curl_put(
        api,
        "legacy-train",
        payload(corpus.utterance(GENUINE, 6, 0)),
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 201
    assert EnrollmentUtterance.objects.filter(user=consenting_alice).count() == 1


def test_basic_auth_with_a_wrong_password_is_401(api, consenting_alice, corpus):
    credentials = base64.b64encode(b"alice:wrong").decode()
    response = curl_put(
        api,
        "legacy-train",
        payload(corpus.utterance(GENUINE, 6, 0)),
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 401
    assert not EnrollmentUtterance.objects.exists()


def test_a_browser_session_is_not_accepted(client, consenting_alice, corpus):
    client.force_login(consenting_alice)
    response = curl_put(client, "legacy-train", payload(corpus.utterance(GENUINE, 6, 0)))
    assert response.status_code == 401
    assert not EnrollmentUtterance.objects.exists()


def test_put_train_stores_for_the_tokens_user_only(bob_token, consenting_bob, alice, corpus):
    curl_put(bob_token, "legacy-train", payload(corpus.utterance(GENUINE, 6, 0)))
    assert EnrollmentUtterance.objects.filter(user=consenting_bob).count() == 1
    assert not EnrollmentUtterance.objects.filter(user=alice).exists()


def test_put_train_invalid_body_is_400_naming_the_field(alice_token, consenting_alice, corpus):
    body = {**payload(corpus.utterance(GENUINE, 6, 0)), "window": "hann"}
    response = curl_put(alice_token, "legacy-train", body)
    assert response.status_code == 400
    assert response.json()["field"] == "utterance.window"


def test_get_is_not_a_legacy_verb(alice_token, alice):
    assert alice_token.get(reverse("legacy-train")).status_code == 405


def test_put_train_of_a_full_enrollment_trains_the_model(alice_token, alice, ubm, corpus):
    consent(alice)
    response = curl_put(alice_token, "legacy-train", _enrollment(corpus))
    assert response.status_code == 201
    assert response.json()["trained"] is True


def test_put_test_with_a_token(alice_token, enrolled_alice, corpus):
    body = {"utterances": [payload(corpus.utterance(GENUINE, d, 35)) for d in (0, 5)]}
    response = curl_put(alice_token, "legacy-test", body)
    assert response.status_code == 201
    assert response.json()["added"] == 2
    assert (
        EnrollmentUtterance.objects.filter(
            user=enrolled_alice, purpose=UtterancePurpose.TEST
        ).count()
        == 2
    )


def test_put_score_with_a_token_accepts_the_genuine_speaker(alice_token, enrolled_alice, corpus):
    response = curl_put(alice_token, "legacy-score", _answer(alice_token, corpus))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"decision", "reason", "attempt"}
    assert body["decision"] == "accept"
    row = VerificationAttempt.objects.get(pk=body["attempt"])
    assert (row.user, row.decision) == (enrolled_alice, Decision.ACCEPT)


def test_put_score_with_a_token_rejects_another_speaker(alice_token, enrolled_alice, corpus):
    response = curl_put(alice_token, "legacy-score", _answer(alice_token, corpus, IMPOSTOR))
    assert response.json()["decision"] == "reject"


def test_put_score_replayed_is_rejected(alice_token, enrolled_alice, corpus):
    body = _answer(alice_token, corpus)
    curl_put(alice_token, "legacy-score", body)
    response = curl_put(alice_token, "legacy-score", body)
    assert response.json()["decision"] == "reject"
    assert response.json()["reason"] == Reason.REPLAYED_CHALLENGE
    assert VerificationAttempt.objects.filter(user=enrolled_alice).count() == 2
