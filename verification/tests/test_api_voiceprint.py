"""The voiceprint endpoints: feature contract, enrollment status, train, test, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from verification import features
from verification.models import (
    Challenge,
    EnrollmentUtterance,
    SpeakerModel,
    UtterancePurpose,
    VerificationAttempt,
)
from verification.tests.factories import ENROLL_PER_DIGIT, GENUINE, payload

STATUS = reverse("voiceprint")
TRAIN = reverse("voiceprint-train")
TEST = reverse("voiceprint-test")


def _batch(corpus, indices, digits=range(10), speaker=GENUINE) -> dict:
    return {
        "utterances": [payload(corpus.utterance(speaker, d, i)) for i in indices for d in digits]
    }


# --------------------------------------------------------------------------------------------------
# Feature contract


def test_feature_contract_needs_no_authentication(api, db):
    response = api.get(reverse("feature-contract"))
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in features.CONTRACT} == features.CONTRACT
    assert body["sample_rate"] == 16000
    assert (body["frame_length"], body["hop_length"]) == (512, 160)
    assert (body["window"], body["mel_bands"]) == ("hamming", 40)
    assert (body["min_frames"], body["max_frames"]) == (features.MIN_FRAMES, features.MAX_FRAMES)


def test_feature_contract_reports_the_configured_challenge_length(api, db, settings):
    settings.VERIFICATION_CHALLENGE_DIGITS = 7
    assert api.get(reverse("feature-contract")).json()["challenge_digits"] == 7


# --------------------------------------------------------------------------------------------------
# Status


def test_status_of_a_new_user_shows_nothing_enrolled(alice_api):
    response = alice_api.get(STATUS)
    assert response.status_code == 200
    body = response.json()
    assert body["utterances_per_digit"] == {str(d): 0 for d in range(10)}
    assert body["digits_missing"] == list(range(10))
    assert body["min_utterances_per_digit"] == 3
    assert body["test_utterances"] == 0
    assert body["enrollment_days"] == 0
    assert body["trained"] is False
    assert body["model"] is None


def test_status_reports_model_and_ubm_versions_once_trained(alice_api, enrolled_alice, ubm):
    body = alice_api.get(STATUS).json()
    assert body["trained"] is True
    assert body["digits_missing"] == []
    assert body["utterances_per_digit"] == {str(d): ENROLL_PER_DIGIT for d in range(10)}
    assert body["model"]["version"] == 1
    assert body["model"]["ubm_version"] == ubm.version
    assert body["model"]["utterance_count"] == 10 * ENROLL_PER_DIGIT


def test_status_counts_the_days_enrollment_utterances_came_on(alice_api, alice, enrolled_alice):
    assert alice_api.get(STATUS).json()["enrollment_days"] == 1
    stored = EnrollmentUtterance.objects.filter(user=alice, purpose=UtterancePurpose.ENROLL)
    first = stored.order_by("id").first()
    stored.filter(pk=first.pk).update(created_at=first.created_at - timedelta(days=3))
    assert alice_api.get(STATUS).json()["enrollment_days"] == 2
    # Held-out test utterances are not enrollment: another day of them counts for nothing.
    EnrollmentUtterance.objects.filter(pk=first.pk).update(purpose=UtterancePurpose.TEST)
    assert alice_api.get(STATUS).json()["enrollment_days"] == 1


# --------------------------------------------------------------------------------------------------
# Train


def test_train_stores_a_single_utterance_and_reports_progress(alice_api, consenting_alice, corpus):
    response = alice_api.post(TRAIN, payload(corpus.utterance(GENUINE, 3, 0)), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["added"] == 1
    assert body["utterances_per_digit"]["3"] == 1
    assert body["utterances_per_digit"]["4"] == 0
    assert 3 in body["digits_missing"]
    assert body["trained"] is False
    row = EnrollmentUtterance.objects.get(user=consenting_alice)
    assert (row.digit, row.purpose) == (3, UtterancePurpose.ENROLL)
    assert row.frame_count == corpus.utterance(GENUINE, 3, 0).n_frames


def test_train_answers_the_committed_status_and_reads_nothing_after_commit(
    transactional_db, alice_api, consenting_alice, ubm, corpus
):
    # The status in the response is known inside the enrollment's transaction: nothing runs
    # after its COMMIT, so a database lost after it cannot turn a stored utterance into an error.
    first = _batch(corpus, range(ENROLL_PER_DIGIT))
    more = {"utterances": [payload(corpus.utterance(GENUINE, 4, ENROLL_PER_DIGIT))]}
    for body, trained in ((_batch(corpus, [0], digits=[1]), False), (first, True), (more, True)):
        with CaptureQueriesContext(connection) as queries:
            response = alice_api.post(TRAIN, body, format="json")
        assert response.status_code == 201, response.content
        assert queries.captured_queries[-1]["sql"] == "COMMIT"
        answered = response.json()
        assert answered.pop("added") == len(body["utterances"])
        assert answered["trained"] is trained
        assert answered == alice_api.get(STATUS).json()


def test_train_stores_a_list_of_utterances(alice_api, consenting_alice, corpus):
    response = alice_api.post(TRAIN, _batch(corpus, [0], digits=[1, 2, 2]), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["added"] == 3
    assert (body["utterances_per_digit"]["1"], body["utterances_per_digit"]["2"]) == (1, 2)
    assert EnrollmentUtterance.objects.filter(user=consenting_alice).count() == 3


def test_train_accepts_put(alice_api, consenting_alice, corpus):
    response = alice_api.put(TRAIN, payload(corpus.utterance(GENUINE, 5, 0)), format="json")
    assert response.status_code == 201
    assert EnrollmentUtterance.objects.filter(user=consenting_alice, digit=5).count() == 1


def test_train_stored_features_are_what_was_sent(alice_api, consenting_alice, corpus):
    utt = corpus.utterance(GENUINE, 7, 1)
    alice_api.post(TRAIN, payload(utt), format="json")
    stored = EnrollmentUtterance.objects.get(user=consenting_alice).to_utterance()
    assert stored.digit == 7
    assert (stored.mel_bands == utt.mel_bands).all()
    assert (stored.rms == utt.rms).all()


def test_train_without_digit_is_400_and_stores_nothing(alice_api, consenting_alice, corpus):
    body = payload(corpus.utterance(GENUINE, 3, 0))
    del body["digit"]
    response = alice_api.post(TRAIN, body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "utterance.digit"
    assert not EnrollmentUtterance.objects.filter(user=consenting_alice).exists()


def test_train_with_wrong_contract_is_400_naming_the_field(alice_api, consenting_alice, corpus):
    good = payload(corpus.utterance(GENUINE, 3, 0))
    batch = {"utterances": [good, {**good, "sample_rate": 44100}]}
    response = alice_api.post(TRAIN, batch, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "utterances[1].sample_rate"
    assert "16000" in body["detail"]
    # One bad utterance refuses the whole request: the good one is not stored either.
    assert not EnrollmentUtterance.objects.filter(user=consenting_alice).exists()


def test_model_is_not_trained_before_every_digit_has_the_minimum(
    alice_api, consenting_alice, corpus, ubm
):
    body = alice_api.post(TRAIN, _batch(corpus, range(ENROLL_PER_DIGIT - 1)), format="json").json()
    assert body["trained"] is False
    assert body["digits_missing"] == list(range(10))
    body = alice_api.post(TRAIN, _batch(corpus, [2], digits=range(9)), format="json").json()
    assert body["trained"] is False
    assert body["digits_missing"] == [9]
    assert not SpeakerModel.objects.filter(user=consenting_alice).exists()


def test_model_is_trained_once_every_digit_has_the_minimum(
    alice_api, consenting_alice, corpus, ubm
):
    alice_api.post(TRAIN, _batch(corpus, range(ENROLL_PER_DIGIT - 1)), format="json")
    response = alice_api.post(TRAIN, _batch(corpus, [ENROLL_PER_DIGIT - 1]), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["trained"] is True
    assert body["model"]["ubm_version"] == ubm.version
    assert body["model"]["utterance_count"] == 10 * ENROLL_PER_DIGIT
    model = SpeakerModel.objects.get(user=consenting_alice)
    assert model.background_model_id == ubm.pk


def test_min_utterances_per_digit_comes_from_the_setting(
    alice_api, consenting_alice, corpus, ubm, settings
):
    settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT = 1
    body = alice_api.post(TRAIN, _batch(corpus, [0]), format="json").json()
    assert body["min_utterances_per_digit"] == 1
    assert body["trained"] is True


def test_model_keeps_adapting_as_utterances_arrive(alice_api, enrolled_alice, corpus):
    before = bytes(SpeakerModel.objects.get(user=enrolled_alice).blob)
    body = alice_api.post(TRAIN, payload(corpus.utterance(GENUINE, 4, 10)), format="json").json()
    assert body["model"]["version"] == 2
    assert body["model"]["utterance_count"] == 10 * ENROLL_PER_DIGIT + 1
    assert bytes(SpeakerModel.objects.get(user=enrolled_alice).blob) != before


def test_train_without_background_model_is_503_and_stores_nothing(
    alice_api, consenting_alice, corpus, settings
):
    settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT = 1
    response = alice_api.post(TRAIN, _batch(corpus, [0]), format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "no_background_model"
    assert not EnrollmentUtterance.objects.filter(user=consenting_alice).exists()


# --------------------------------------------------------------------------------------------------
# Test (held-out utterances)


def test_test_before_enrollment_is_409(alice_api, alice, corpus):
    response = alice_api.post(TEST, payload(corpus.utterance(GENUINE, 1, 30)), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "not_enrolled"
    assert not EnrollmentUtterance.objects.filter(user=alice).exists()


def test_test_stores_held_out_utterances_apart_from_enrollment(alice_api, enrolled_alice, corpus):
    response = alice_api.post(TEST, _batch(corpus, [30], digits=[1, 2]), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["added"] == 2
    assert [row["digit"] for row in body["utterances"]] == [1, 2]
    tests = EnrollmentUtterance.objects.filter(user=enrolled_alice, purpose=UtterancePurpose.TEST)
    assert tests.count() == 2
    status = alice_api.get(STATUS).json()
    assert status["test_utterances"] == 2
    assert status["utterances_per_digit"]["1"] == ENROLL_PER_DIGIT
    assert status["model"]["version"] == 1


def test_test_hides_scores_from_the_claimant(alice_api, enrolled_alice, corpus, settings):
    settings.VERIFICATION_EXPOSE_SCORE = False
    body = alice_api.put(TEST, payload(corpus.utterance(GENUINE, 1, 30)), format="json").json()
    assert "score" not in body
    assert "threshold" not in body
    assert all("score" not in row and "passed" not in row for row in body["utterances"])


def test_test_scores_genuine_held_out_utterances_as_passing_when_exposed(
    alice_api, enrolled_alice, corpus, ubm, settings
):
    settings.VERIFICATION_EXPOSE_SCORE = True
    body = alice_api.post(TEST, _batch(corpus, [30]), format="json").json()
    assert body["threshold"] == pytest.approx(ubm.threshold)
    assert body["score"] >= body["threshold"], body
    assert body["passed"] is True
    assert all(isinstance(row["score"], float) for row in body["utterances"])


# --------------------------------------------------------------------------------------------------
# Delete


def test_delete_removes_utterances_model_and_open_challenges(alice_api, enrolled_alice, corpus):
    alice_api.post(TEST, payload(corpus.utterance(GENUINE, 1, 30)), format="json")
    alice_api.post(reverse("challenge-list"))
    response = alice_api.delete(STATUS)
    assert response.status_code == 204
    assert not EnrollmentUtterance.objects.filter(user=enrolled_alice).exists()
    assert not SpeakerModel.objects.filter(user=enrolled_alice).exists()
    assert not Challenge.objects.filter(user=enrolled_alice).exists()
    body = alice_api.get(STATUS).json()
    assert (body["trained"], body["test_utterances"]) == (False, 0)


def test_delete_keeps_audit_rows_and_the_challenges_they_point_at(
    alice_api, enrolled_alice, corpus
):
    challenge = alice_api.post(reverse("challenge-list")).json()
    one_digit = {
        "challenge": challenge["id"],
        "utterances": [payload(corpus.utterance(GENUINE, 1, 30))],
    }
    assert alice_api.post(reverse("voiceprint-score"), one_digit, format="json").status_code == 200
    attempt = VerificationAttempt.objects.get(user=enrolled_alice)
    assert alice_api.delete(STATUS).status_code == 204
    attempt.refresh_from_db()
    assert attempt.challenge.nonce == challenge["id"]
    assert attempt.challenge.used_at is not None


def test_status_loads_no_feature_or_model_blobs(alice_api, enrolled_alice):
    with CaptureQueriesContext(connection) as queries:
        assert alice_api.get(STATUS).status_code == 200
    selected = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert selected
    for sql in selected:
        columns = sql.split(" FROM ")[0]
        assert '"blob"' not in columns, sql
        assert '"features"' not in columns, sql
