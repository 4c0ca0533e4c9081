"""The owner is e-mailed when failures lock the voice factor (the first lock of a streak) and
when they turn it off; never for failures an accept refunds, never with a score, and a mail
server that is down costs nothing but the e-mail."""

from __future__ import annotations

import logging
import smtplib

import pytest
from django.core import mail

from verification import notifications
from verification.models import Reason
from verification.tests.factories import GENUINE
from verification.tests.test_security_lockout import _attempt, _later, _scored_wrong, _wrong


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``committed(f, *args)``: call f, then run the on_commit callbacks it left, as its commits
    would have (the test's own transaction never commits)."""

    def run(function, *args):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args)

    return run


def test_the_failure_that_locks_sends_one_alert(enrolled_alice, corpus, committed):
    committed(_scored_wrong, enrolled_alice, corpus, 4)
    assert mail.outbox == []

    committed(_scored_wrong, enrolled_alice, corpus, 1)
    locked = committed(_attempt, enrolled_alice, corpus).attempt
    assert locked.reason == Reason.LOCKED_OUT  # not charged, not mailed

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [enrolled_alice.email]
    assert message.subject == notifications.SUBJECTS[notifications.LOCKED]
    assert "5 voice verifications in a row have failed" in message.body
    assert "paused" in message.body
    assert "score" not in message.body.lower()


def test_turning_the_factor_off_sends_a_second_alert(
    enrolled_alice, corpus, committed, settings, monkeypatch
):
    settings.VERIFICATION_LOCKOUT_DISABLE_AFTER = 7
    committed(_wrong, enrolled_alice, corpus, 5)  # rejected unscored: the charge stands
    for hours in (3, 6):  # each further failure once the delay is over
        _later(monkeypatch, hours * 3600)
        committed(_wrong, enrolled_alice, corpus, 1)

    assert [m.subject for m in mail.outbox] == [
        notifications.SUBJECTS[notifications.LOCKED],
        notifications.SUBJECTS[notifications.DISABLED],
    ]
    assert "7 voice verifications in a row" in mail.outbox[1].body
    assert "turned off" in mail.outbox[1].body


def test_a_failure_refunded_by_an_accept_alerts_nobody(enrolled_alice, corpus, committed):
    committed(_scored_wrong, enrolled_alice, corpus, 4)
    fifth = committed(_attempt, enrolled_alice, corpus, GENUINE)  # charged, then refunded
    assert fifth.accepted

    assert mail.outbox == []


def test_no_alert_when_switched_off(enrolled_alice, corpus, committed, settings):
    settings.VERIFICATION_ALERT_EMAILS = False
    committed(_wrong, enrolled_alice, corpus, 5)
    assert mail.outbox == []


def test_no_alert_without_an_address(enrolled_alice, corpus, committed):
    enrolled_alice.email = ""
    enrolled_alice.save()

    committed(_wrong, enrolled_alice, corpus, 5)

    assert mail.outbox == []


def test_a_mail_server_that_is_down_costs_only_the_email(
    enrolled_alice, corpus, committed, monkeypatch, caplog
):
    def down(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(notifications, "send_mail", down)

    with caplog.at_level(logging.WARNING, logger="verification.notifications"):
        rows = committed(_wrong, enrolled_alice, corpus, 5)

    assert [row.decision for row in rows] == ["reject"] * 5
    assert "voice-factor alert to user" in caplog.text
    assert "Traceback" not in caplog.text
    assert mail.outbox == []


def test_a_task_backend_that_fails_to_enqueue_costs_only_the_email(
    enrolled_alice, corpus, committed, monkeypatch
):
    class Unreachable:
        def enqueue(self, *args, **kwargs):
            raise ConnectionError("task queue unreachable")

    monkeypatch.setattr(notifications, "voice_factor_alert", Unreachable())

    rows = committed(_wrong, enrolled_alice, corpus, 5)

    assert [row.decision for row in rows] == ["reject"] * 5
    assert mail.outbox == []
