"""Admin review (issue 6, acceptance 2): pages render for staff and are refused to others; the
audit log is read-only; CSV export holds exactly the filtered rows; the lockout reset and the
labels are audited; the dashboard's figures come from the labelled attempts."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from verification import reports, services
from verification.engine import metrics
from verification.models import (
    AttemptLabel,
    AuditEvent,
    AuditEventKind,
    Decision,
    Reason,
    VerificationAttempt,
    VerificationLockout,
)

CHANGELIST = reverse("admin:verification_verificationattempt_changelist")
DASHBOARD = reverse("admin:verification_dashboard")
EXPORT = reverse("admin:verification_attempts_csv")


def _attempt(user, reason=Reason.LOW_SCORE, score=None, ua="pytest") -> VerificationAttempt:
    decision = Decision.ACCEPT if reason == Reason.ACCEPTED else Decision.REJECT
    return services.verification_attempt_create(
        user=user,
        decision=decision,
        reason=reason,
        client=services.ClientInfo(ip="198.51.100.4", user_agent=ua),
        score=score,
        threshold=0.5 if score is not None else None,
    )


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(staff) -> Client:
    return _client(staff)


def _pages(alice) -> list[str]:
    attempt = _attempt(alice)
    services.verification_lockout_reset(user=alice)
    services.attempt_label_set(attempt=attempt, truth=AttemptLabel.Truth.GENUINE, actor=alice)
    return [
        CHANGELIST,
        f"{CHANGELIST}?decision__exact=reject&reason__exact=low_score",
        f"{CHANGELIST}?user__id__exact={alice.pk}&created_at__gte=2020-01-01+00:00:00%2B00:00",
        f"{CHANGELIST}?q=alice",
        f"{CHANGELIST}?created_at__year={timezone.now().year}",
        reverse("admin:verification_verificationattempt_change", args=[attempt.pk]),
        DASHBOARD,
        reverse("admin:verification_user_review", args=[alice.pk]),
        reverse("admin:verification_auditevent_changelist"),
        reverse("admin:verification_attemptlabel_changelist"),
        EXPORT,
    ]


def _csv(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------------------------------
# Who gets in


def test_admin_pages_and_dashboard_render_for_staff(staff_client, alice):
    for url in _pages(alice):
        assert staff_client.get(url).status_code == 200, url


def test_admin_pages_and_dashboard_redirect_non_staff_to_login(alice):
    client = _client(alice)
    for url in _pages(alice):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_admin_pages_and_dashboard_redirect_anonymous_to_login(alice):
    client = Client()
    for url in _pages(alice):
        assert client.get(url).status_code == 302, url


def test_staff_without_view_permission_is_refused_the_dashboard(alice):
    clerk = UserFactory(username="clerk", is_staff=True)
    client = _client(clerk)
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(reverse("admin:verification_user_review", args=[alice.pk])).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_staff_with_view_permission_sees_the_dashboard(alice):
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_verificationattempt"))
    assert _client(clerk).get(DASHBOARD).status_code == 200


def test_dashboard_page_has_no_inline_script(staff_client):
    html = staff_client.get(DASHBOARD).content.decode()
    assert '<script id="dashboard-data" type="application/json">' in html
    assert "vendor/chartjs/chart.umd.min.js" in html
    assert 'type="module" src="/static/js/dashboard.js"' in html
    # Every other script tag has a src (the CSP allows no inline code).
    data_blocks = html.count('<script id="dashboard-data" type="application/json">')
    with_src = html.count("<script src=") + html.count('<script type="module" src=')
    assert html.count("<script") == with_src + data_blocks


# --------------------------------------------------------------------------------------------------
# Read-only


def test_attempt_detail_is_read_only_for_a_superuser(staff_client, alice):
    attempt = _attempt(alice)
    url = reverse("admin:verification_verificationattempt_change", args=[attempt.pk])
    page = staff_client.get(url).content.decode()
    assert 'name="_save"' not in page
    response = staff_client.post(url, {"reason": Reason.ACCEPTED, "decision": Decision.ACCEPT})
    assert response.status_code == 403
    attempt.refresh_from_db()
    assert attempt.reason == Reason.LOW_SCORE


def test_attempts_cannot_be_added_or_deleted_in_the_admin(staff_client, alice):
    attempt = _attempt(alice)
    add = reverse("admin:verification_verificationattempt_add")
    delete = reverse("admin:verification_verificationattempt_delete", args=[attempt.pk])
    assert staff_client.get(add).status_code == 403
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert VerificationAttempt.objects.filter(pk=attempt.pk).exists()


def test_bulk_delete_action_is_not_offered(staff_client, alice):
    _attempt(alice)
    response = staff_client.get(CHANGELIST)
    actions = dict(response.context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions
    assert {"export_csv", "label_genuine", "label_impostor"} <= set(actions)


# --------------------------------------------------------------------------------------------------
# CSV export


def test_csv_export_contains_exactly_the_filtered_rows(staff_client, alice, bob):
    wanted = [_attempt(alice, Reason.LOW_SCORE, score=-1.5), _attempt(alice, Reason.LOW_SCORE)]
    _attempt(alice, Reason.EXPIRED_CHALLENGE)
    _attempt(bob, Reason.LOW_SCORE)
    _attempt(alice, Reason.ACCEPTED, score=2.0)
    response = staff_client.get(f"{EXPORT}?user__id__exact={alice.pk}&reason__exact=low_score")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert [int(r["id"]) for r in rows] == [a.pk for a in wanted]
    assert {r["username"] for r in rows} == {"alice"}
    assert rows[0]["score"] == "-1.5"
    assert rows[0]["entry_hash"] == wanted[0].entry_hash


def test_csv_export_follows_the_search_box(staff_client, alice, bob):
    _attempt(alice)
    mine = _attempt(bob)
    rows = _csv(staff_client.get(f"{EXPORT}?q=bob"))
    assert [int(r["id"]) for r in rows] == [mine.pk]


def test_changelist_links_the_export_of_its_current_filter(staff_client, alice):
    _attempt(alice)
    page = staff_client.get(f"{CHANGELIST}?reason__exact=low_score").content.decode()
    assert f"{EXPORT}?reason__exact=low_score" in page


def test_csv_export_action_exports_the_selected_rows(staff_client, alice):
    picked, _other = _attempt(alice), _attempt(alice)
    response = staff_client.post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [picked.pk]}
    )
    assert [int(r["id"]) for r in _csv(response)] == [picked.pk]


def test_csv_export_defuses_spreadsheet_formulas(staff_client, alice):
    _attempt(alice, ua='=HYPERLINK("http://evil.example","x")')
    (row,) = _csv(staff_client.get(EXPORT))
    assert row["user_agent"].startswith("'=")


# --------------------------------------------------------------------------------------------------
# Per-user review, lockout reset, labels


def test_user_review_shows_model_lockout_and_recent_attempts(staff_client, alice):
    VerificationLockout.objects.create(
        user=alice,
        consecutive_failures=5,
        total_failures=5,
        locked_until=timezone.now() + timedelta(minutes=10),
    )
    attempt = _attempt(alice, Reason.LOCKED_OUT)
    response = staff_client.get(reverse("admin:verification_user_review", args=[alice.pk]))
    page = response.content.decode()
    assert "locked until" in page
    assert "5 consecutive" in page
    assert "incomplete (digits missing" in page
    assert list(response.context["attempts"]) == [attempt]
    assert "Reset lockout" in page


def test_reset_lockout_action_clears_the_lockout_and_is_audited(staff_client, staff, alice):
    VerificationLockout.objects.create(
        user=alice,
        consecutive_failures=5,
        total_failures=9,
        locked_until=timezone.now() + timedelta(minutes=10),
    )
    url = reverse("admin:verification_reset_lockout", args=[alice.pk])
    response = staff_client.post(url)
    assert response.status_code == 302
    lockout = VerificationLockout.objects.get(user=alice)
    assert (lockout.consecutive_failures, lockout.locked_until) == (0, None)
    event = AuditEvent.objects.get(kind=AuditEventKind.LOCKOUT_RESET)
    assert (event.user, event.actor) == (alice, staff)
    assert event.details["total_failures"] == 9
    assert event.details["was_locked"] is True


def test_reset_lockout_needs_post(staff_client, alice):
    url = reverse("admin:verification_reset_lockout", args=[alice.pk])
    assert staff_client.get(url).status_code == 405
    assert not AuditEvent.objects.exists()


def test_reset_lockout_is_refused_to_non_staff_and_to_view_only_staff(alice, bob):
    url = reverse("admin:verification_reset_lockout", args=[alice.pk])
    assert _client(bob).post(url).status_code == 302  # to the admin login
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_verificationattempt"))
    assert _client(clerk).post(url).status_code == 403
    assert not AuditEvent.objects.exists()


def test_label_action_stores_labels_and_audits_them(staff_client, staff, alice):
    attempts = [_attempt(alice), _attempt(alice)]
    response = staff_client.post(
        CHANGELIST,
        {"action": "label_impostor", "_selected_action": [a.pk for a in attempts]},
    )
    assert response.status_code == 302
    assert AttemptLabel.objects.filter(truth="impostor", labelled_by=staff).count() == 2
    events = AuditEvent.objects.filter(kind=AuditEventKind.ATTEMPT_LABELLED, actor=staff)
    assert sorted(e.details["attempt"] for e in events) == sorted(a.pk for a in attempts)


def test_label_action_is_not_offered_without_the_label_permission(alice):
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_verificationattempt"))
    _attempt(alice)
    response = _client(clerk).get(CHANGELIST)
    actions = dict(response.context["action_form"].fields["action"].choices)
    assert "label_genuine" not in actions
    assert "export_csv" in actions


# --------------------------------------------------------------------------------------------------
# Dashboard figures


def test_dashboard_error_rates_come_from_labelled_attempts(staff_client, staff, alice):
    rng = np.random.default_rng(6)
    genuine = rng.normal(1.0, 0.5, 40)
    impostor = rng.normal(-1.0, 0.5, 60)
    for truth, scores in (("genuine", genuine), ("impostor", impostor)):
        for s in scores:
            reason = Reason.ACCEPTED if s >= 0.5 else Reason.LOW_SCORE
            attempt = _attempt(alice, reason, score=float(s))
            AttemptLabel.objects.create(attempt=attempt, truth=truth, labelled_by=staff)
    _attempt(alice, Reason.LOW_SCORE, score=5.0)  # unlabelled: not in the error rates
    data = staff_client.get(DASHBOARD).context["data"]
    assert data["rates"]["eer"] == pytest.approx(metrics.eer(genuine, impostor))
    assert data["counts"] == {
        "attempts": 101,
        "scored": 101,
        "genuine_labels": 40,
        "impostor_labels": 60,
    }
    assert sum(data["labels"]["genuine"]) == 40
    assert sum(data["decisions"]["accepted"]) + sum(data["decisions"]["rejected"]) == 101


def test_error_rates_at_the_threshold_in_force():
    rates = reports.error_rates([1.0, 2.0, 0.0], [-1.0, 0.6, -2.0, -3.0], threshold=0.5)
    assert rates["frr"] == pytest.approx(1 / 3)
    assert rates["far"] == pytest.approx(1 / 4)


def test_error_rates_need_both_kinds_of_labels():
    assert reports.error_rates([1.0], [], threshold=0.0)["eer"] is None


def test_attempts_per_day_count_by_decision(alice):
    _attempt(alice, Reason.ACCEPTED, score=1.0)
    _attempt(alice)
    _attempt(alice)
    per_day = reports.attempts_per_day(days=7)
    assert per_day["days"][-1] == timezone.localdate().isoformat()
    assert (per_day["accept"][-1], per_day["reject"][-1]) == (1, 2)
    assert sum(per_day["reject"][:-1]) == 0


def test_dashboard_shows_the_active_threshold_and_ubm(staff_client, ubm):
    page = staff_client.get(DASHBOARD).content.decode()
    assert ubm.version in page
    assert f"{ubm.threshold:.3f}" in page


def test_admin_index_links_the_dashboard(staff_client):
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert f'href="{DASHBOARD}"' in page
    assert "Site administration" in page  # the stock index is still there


def test_dashboard_scores_are_those_of_the_active_background_model(staff_client, alice, ubm):
    services.verification_attempt_create(
        user=alice,
        decision=Decision.REJECT,
        reason=Reason.LOW_SCORE,
        client=services.ClientInfo(),
        background_model=ubm,
        score=-3.0,
        threshold=ubm.threshold,
    )
    _attempt(alice, Reason.LOW_SCORE, score=-1.0)  # no / another background model
    data = staff_client.get(DASHBOARD).context["data"]
    assert data["counts"]["scored"] == 1
    assert data["ubm_version"] == ubm.version


def test_observed_rates_count_what_was_decided_for_labelled_attempts(staff, alice):
    decided = [
        (Reason.ACCEPTED, "impostor"),
        (Reason.WRONG_CONTENT, "impostor"),
        (Reason.LOW_SCORE, "impostor"),
        (Reason.ACCEPTED, "genuine"),
        (Reason.WRONG_CONTENT, "genuine"),
    ]
    for reason, truth in decided:
        services.attempt_label_set(attempt=_attempt(alice, reason), truth=truth, actor=staff)
    rates = reports.observed_rates(AttemptLabel.objects.all())
    assert rates["far"] == pytest.approx(1 / 3)
    assert rates["frr"] == pytest.approx(1 / 2)
    assert (rates["impostor_trials"], rates["genuine_trials"]) == (3, 2)


def test_seed_demo_fills_an_empty_database_with_labelled_audited_traffic(ubm, corpus):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("seed_demo", "--attempts", "3", "--admin-password", "x" * 16, stdout=out)
    assert "staff login demo_admin" in out.getvalue()
    assert VerificationAttempt.objects.count() >= 6 * 3
    assert AttemptLabel.objects.exists()
    call_command("verify_audit", stdout=io.StringIO())


def test_seed_demo_refuses_a_database_with_real_users(ubm, alice):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="real users"):
        call_command("seed_demo", stdout=io.StringIO())


def test_user_review_shows_the_model_and_ubm_versions_of_an_enrolled_user(
    staff_client, enrolled_alice, ubm
):
    response = staff_client.get(reverse("admin:verification_user_review", args=[enrolled_alice.pk]))
    page = response.content.decode()
    assert "enrolled" in page
    assert "version 1, 30 utterances" in page
    assert ubm.version in page
    assert "not locked" in page
    kinds = [e.kind for e in response.context["events"]]
    assert kinds[0] == AuditEventKind.MODEL_TRAINED


def test_user_list_links_each_users_verification_review(staff_client, alice):
    page = staff_client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert reverse("admin:verification_user_review", args=[alice.pk]) in page
