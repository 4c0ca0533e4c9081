"""GET /api/v1/attempts/ and /attempts/{id}/: the caller's own verification history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from verification import services
from verification.models import Decision, Reason

ATTEMPTS = reverse("attempt-list")


def _attempt(user, *, score: float = -0.5, decision=Decision.REJECT, reason=Reason.LOW_SCORE):
    return services.verification_attempt_create(
        user=user,
        decision=decision,
        reason=reason,
        client=services.ClientInfo(ip="203.0.113.7", user_agent="curl/8"),
        score=score,
        threshold=0.25,
        frame_count=120,
    )


def _ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_list_shows_only_the_callers_attempts(alice_api, alice, bob):
    mine = [
        _attempt(alice),
        _attempt(alice, score=1.0, decision=Decision.ACCEPT, reason="accepted"),
    ]
    _attempt(bob)
    response = alice_api.get(ATTEMPTS)
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert sorted(_ids(response)) == sorted(a.pk for a in mine)


def test_list_is_newest_first(alice_api, alice):
    first, second = _attempt(alice), _attempt(alice)
    assert _ids(alice_api.get(ATTEMPTS)) == [second.pk, first.pk]


def test_detail_of_an_own_attempt(alice_api, alice):
    attempt = _attempt(alice)
    response = alice_api.get(reverse("attempt-detail", args=[attempt.pk]))
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["decision"], body["reason"]) == (attempt.pk, "reject", "low_score")
    assert body["frame_count"] == 120


def test_detail_of_another_users_attempt_is_404(alice_api, bob):
    attempt = _attempt(bob)
    response = alice_api.get(reverse("attempt-detail", args=[attempt.pk]))
    assert response.status_code == 404
    assert "low_score" not in response.content.decode()


def test_detail_of_a_missing_attempt_is_404(alice_api, alice):
    assert alice_api.get(reverse("attempt-detail", args=[999_999])).status_code == 404


def test_claimant_never_sees_scores_or_client_details_by_default(alice_api, alice, settings):
    settings.VERIFICATION_EXPOSE_SCORE = False
    attempt = _attempt(alice)
    listed = alice_api.get(ATTEMPTS).json()["results"][0]
    detail = alice_api.get(reverse("attempt-detail", args=[attempt.pk])).json()
    for body in (listed, detail):
        assert not {"score", "threshold", "client_ip", "user_agent", "user"} & set(body)


def test_scores_are_listed_when_exposed(alice_api, alice, settings):
    settings.VERIFICATION_EXPOSE_SCORE = True
    _attempt(alice, score=-0.5)
    row = alice_api.get(ATTEMPTS).json()["results"][0]
    assert (row["score"], row["threshold"]) == (pytest.approx(-0.5), pytest.approx(0.25))
    assert "client_ip" not in row


def test_staff_see_everyones_attempts_with_scores_and_clients(staff_api, alice, bob):
    attempts = [_attempt(alice), _attempt(bob)]
    response = staff_api.get(ATTEMPTS)
    assert sorted(_ids(response)) == sorted(a.pk for a in attempts)
    rows = {row["id"]: row for row in response.json()["results"]}
    bobs = rows[attempts[1].pk]
    assert bobs["user"] == "bob"
    assert bobs["score"] == pytest.approx(-0.5)
    assert (bobs["client_ip"], bobs["user_agent"]) == ("203.0.113.7", "curl/8")


def test_staff_read_another_users_attempt(staff_api, alice):
    attempt = _attempt(alice)
    response = staff_api.get(reverse("attempt-detail", args=[attempt.pk]))
    assert response.status_code == 200
    assert response.json()["user"] == "alice"


def test_attempts_are_read_only(alice_api, alice):
    attempt = _attempt(alice)
    detail = reverse("attempt-detail", args=[attempt.pk])
    assert alice_api.post(ATTEMPTS, {}, format="json").status_code == 405
    assert alice_api.delete(detail).status_code == 405
    assert alice_api.patch(detail, {"decision": "accept"}, format="json").status_code == 405
