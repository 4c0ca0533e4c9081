"""POST /api/v1/challenges/: random digits, single-use id, short lifetime, bound to the caller."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from verification.models import Challenge

CHALLENGES = reverse("challenge-list")


def test_challenge_before_enrollment_is_409(alice_api, alice):
    response = alice_api.post(CHALLENGES)
    assert response.status_code == 409
    assert response.json()["code"] == "not_enrolled"
    assert not Challenge.objects.filter(user=alice).exists()


def test_challenge_has_the_default_five_digits(alice_api, enrolled_alice):
    response = alice_api.post(CHALLENGES)
    assert response.status_code == 201
    digits = response.json()["digits"]
    assert len(digits) == 5
    assert all(type(d) is int and 0 <= d <= 9 for d in digits)


def test_challenge_digit_count_comes_from_the_setting(alice_api, enrolled_alice, settings):
    settings.VERIFICATION_CHALLENGE_DIGITS = 8
    assert len(alice_api.post(CHALLENGES).json()["digits"]) == 8


def test_challenge_expires_after_the_configured_ttl(alice_api, enrolled_alice, settings):
    settings.VERIFICATION_CHALLENGE_TTL = 300
    before = timezone.now()
    expires_at = parse_datetime(alice_api.post(CHALLENGES).json()["expires_at"])
    after = timezone.now()
    assert before + timedelta(seconds=300) <= expires_at <= after + timedelta(seconds=300)


def test_challenge_is_stored_open_and_bound_to_the_caller(alice_api, enrolled_alice):
    body = alice_api.post(CHALLENGES).json()
    row = Challenge.objects.get(nonce=body["id"])
    assert row.user == enrolled_alice
    assert row.used_at is None
    assert row.digit_list == body["digits"]


def test_challenge_ids_are_unguessable_and_never_repeat(alice_api, enrolled_alice):
    ids = {alice_api.post(CHALLENGES).json()["id"] for _ in range(5)}
    assert len(ids) == 5
    # 256-bit nonces, URL-safe base64: not the database id.
    assert all(len(i) >= 43 for i in ids)


def test_challenge_digits_are_drawn_at_random(alice_api, enrolled_alice, settings):
    settings.VERIFICATION_CHALLENGE_DIGITS = 16
    draws = {tuple(alice_api.post(CHALLENGES).json()["digits"]) for _ in range(3)}
    # Three identical 16-digit draws happen with probability 1e-32.
    assert len(draws) > 1


def test_challenge_accepts_no_get(alice_api, enrolled_alice):
    assert alice_api.get(CHALLENGES).status_code == 405
