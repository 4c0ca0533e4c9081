"""The audit log is append-only at the database and hash-chained; verify_audit names the first
row that does not verify (issue 6, acceptance 1)."""

from __future__ import annotations

from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from verification import audit, selectors, services
from verification.models import (
    AttemptLabel,
    AuditEvent,
    AuditEventKind,
    Decision,
    Reason,
    VerificationAttempt,
)

ATTEMPTS = VerificationAttempt._meta.db_table
EVENTS = AuditEvent._meta.db_table


def _reject(user, reason=Reason.UNKNOWN_CHALLENGE, **extra) -> VerificationAttempt:
    return services.verification_attempt_create(
        user=user,
        decision=Decision.REJECT,
        reason=reason,
        client=services.ClientInfo(ip="203.0.113.7", user_agent="pytest"),
        **extra,
    )


@contextmanager
def _triggers_off():
    """Act as someone with raw database access who switches the append-only triggers off (the
    table owner / superuser): what the hash chain must still expose."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            try:
                yield cursor
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        else:
            # SQLite DDL is transactional: the test's rollback puts the triggers back.
            for table in (ATTEMPTS, EVENTS):
                cursor.execute(f"DROP TRIGGER {table}_no_update")
            yield cursor


def _verify_audit(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Append-only at the database


def test_database_refuses_update_of_an_attempt(alice):
    attempt = _reject(alice)
    with pytest.raises(DatabaseError), transaction.atomic():
        VerificationAttempt.objects.filter(pk=attempt.pk).update(reason=Reason.ACCEPTED)
    attempt.refresh_from_db()
    assert attempt.reason == Reason.UNKNOWN_CHALLENGE


# SQLite refuses only UPDATE (its test flush needs DELETE; see migration 0002).
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="Postgres trigger behaviour"
)


@postgres_only
def test_database_refuses_delete_of_an_attempt(alice):
    attempt = _reject(alice)
    with pytest.raises(DatabaseError), transaction.atomic():
        VerificationAttempt.objects.filter(pk=attempt.pk).delete()
    assert VerificationAttempt.objects.filter(pk=attempt.pk).exists()


def test_database_refuses_raw_sql_update_of_an_attempt(alice):
    attempt = _reject(alice)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE verification_verificationattempt SET score = 99 WHERE id = %s", [attempt.pk]
        )
    attempt.refresh_from_db()
    assert attempt.score is None


def test_database_refuses_update_of_an_audit_event(alice, staff):
    services.verification_lockout_reset(user=alice, actor=staff)
    event = AuditEvent.objects.get(user=alice)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(kind=AuditEventKind.MODEL_TRAINED)
    event.refresh_from_db()
    assert event.kind == AuditEventKind.LOCKOUT_RESET


@postgres_only
def test_database_refuses_delete_of_an_audit_event(alice, staff):
    services.verification_lockout_reset(user=alice, actor=staff)
    event = AuditEvent.objects.get(user=alice)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_user_with_audit_history_cannot_be_deleted(alice):
    from django.db.models import ProtectedError

    _reject(alice)
    with pytest.raises(ProtectedError), transaction.atomic():
        alice.delete()


# --------------------------------------------------------------------------------------------------
# Hash chain


def test_each_attempt_links_to_the_previous_one(alice, bob):
    first, second, third = _reject(alice), _reject(bob), _reject(alice, Reason.EXPIRED_CHALLENGE)
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == audit.GENESIS
    assert second.prev_hash == first.entry_hash
    assert third.prev_hash == second.entry_hash
    assert len({first.entry_hash, second.entry_hash, third.entry_hash}) == 3


def test_stored_hash_matches_the_row_read_back_from_the_database(alice):
    written = _reject(alice, score=-0.1234567890123, threshold=0.5, frame_count=321)
    stored = VerificationAttempt.objects.get(pk=written.pk)
    assert stored.audit_content() == written.audit_content()
    assert audit.entry_hash("attempt", stored.audit_content(), stored.prev_hash) == (
        stored.entry_hash
    )


def test_ipv6_client_address_is_hashed_as_the_database_stores_it(alice):
    services.verification_attempt_create(
        user=alice,
        decision=Decision.REJECT,
        reason=Reason.UNKNOWN_CHALLENGE,
        client=services.ClientInfo(ip="2001:0DB8:0000:0000:0000:0000:0000:0001"),
    )
    assert selectors.audit_chain_report(VerificationAttempt).ok


def test_audit_rows_hold_no_feature_arrays():
    columns = {f.get_internal_type() for f in VerificationAttempt._meta.concrete_fields}
    columns |= {f.get_internal_type() for f in AuditEvent._meta.concrete_fields}
    assert "BinaryField" not in columns


def test_verify_audit_passes_and_prints_the_heads(alice, staff):
    _reject(alice)
    last = _reject(alice, Reason.LOCKED_OUT)
    services.verification_lockout_reset(user=alice, actor=staff)
    out = _verify_audit()
    assert f"attempt: 2 rows verified, head {last.entry_hash}" in out
    assert "event: 1 rows verified" in out


def test_verify_audit_names_a_row_edited_behind_the_orms_back(alice):
    rows = [_reject(alice) for _ in range(5)]
    with _triggers_off() as cursor:
        cursor.execute(
            "UPDATE verification_verificationattempt SET decision = 'accept', "
            "reason = 'accepted' WHERE id = %s",
            [rows[2].pk],
        )
    with pytest.raises(CommandError, match=rf"row seq 3 \(id {rows[2].pk}\) does not verify"):
        _verify_audit()


def test_verify_audit_names_the_row_after_a_deleted_one(alice):
    rows = [_reject(alice) for _ in range(4)]
    with _triggers_off() as cursor:
        cursor.execute("DELETE FROM verification_verificationattempt WHERE id = %s", [rows[1].pk])
    with pytest.raises(CommandError, match=r"row seq 3 .* expected seq 2, found 3"):
        _verify_audit()


def test_verify_audit_catches_a_rehashed_row_by_its_successor(alice):
    """Editing a row and recomputing its own hash still breaks the next row's link."""
    rows = [_reject(alice) for _ in range(3)]
    forged = rows[1].audit_content() | {"reason": Reason.LOW_SCORE}
    digest = audit.entry_hash("attempt", forged, rows[1].prev_hash)
    with _triggers_off() as cursor:
        cursor.execute(
            "UPDATE verification_verificationattempt SET reason = 'low_score', entry_hash = %s "
            "WHERE id = %s",
            [digest, rows[1].pk],
        )
    with pytest.raises(CommandError, match=r"row seq 3 .* prev_hash"):
        _verify_audit()


def test_verify_audit_names_an_edited_audit_event(alice, staff):
    services.verification_lockout_reset(user=alice, actor=staff)
    services.verification_lockout_reset(user=alice, actor=staff)
    second = AuditEvent.objects.get(seq=2)
    with _triggers_off() as cursor:
        cursor.execute(
            "UPDATE verification_auditevent SET actor_id = NULL WHERE id = %s", [second.pk]
        )
    with pytest.raises(CommandError, match=rf"{EVENTS}: row seq 2 \(id {second.pk}\)"):
        _verify_audit()


def test_verify_audit_refuses_an_unexpected_head(alice):
    _reject(alice)
    with pytest.raises(CommandError, match="expected " + "f" * 64):
        _verify_audit("--expect-head", "attempt:" + "f" * 64)


def test_verify_audit_accepts_the_recorded_head(alice):
    head = _reject(alice).entry_hash
    assert "attempt: 1 rows verified" in _verify_audit("--expect-head", f"attempt:{head}")


# --------------------------------------------------------------------------------------------------
# Audit events and labels


def test_lockout_reset_is_audited_with_the_previous_counters(alice, staff):
    from verification.models import VerificationLockout

    VerificationLockout.objects.create(user=alice, consecutive_failures=5, total_failures=7)
    services.verification_lockout_reset(user=alice, actor=staff)
    event = AuditEvent.objects.get(kind=AuditEventKind.LOCKOUT_RESET)
    assert (event.user, event.actor) == (alice, staff)
    assert event.details["consecutive_failures"] == 5
    assert event.details["total_failures"] == 7


def test_labelling_an_attempt_stores_the_label_and_audits_it(alice, staff):
    attempt = _reject(alice)
    services.attempt_label_set(attempt=attempt, truth=AttemptLabel.Truth.IMPOSTOR, actor=staff)
    services.attempt_label_set(attempt=attempt, truth=AttemptLabel.Truth.GENUINE, actor=staff)
    assert AttemptLabel.objects.get(attempt=attempt).truth == AttemptLabel.Truth.GENUINE
    events = AuditEvent.objects.filter(kind=AuditEventKind.ATTEMPT_LABELLED).order_by("seq")
    assert [e.details["truth"] for e in events] == ["impostor", "genuine"]


def test_voiceprint_deletion_is_audited_and_keeps_the_attempts(alice):
    attempt = _reject(alice)
    services.voiceprint_delete(user=alice)
    event = AuditEvent.objects.get(kind=AuditEventKind.VOICEPRINT_DELETED)
    assert event.user == alice
    assert VerificationAttempt.objects.filter(pk=attempt.pk).exists()


@postgres_only
def test_verify_audit_warns_when_a_trigger_is_disabled(alice):
    _reject(alice)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks before ALTER
        cursor.execute(f"ALTER TABLE {ATTEMPTS} DISABLE TRIGGER {ATTEMPTS}_append_only")
    err = StringIO()
    call_command("verify_audit", stdout=StringIO(), stderr=err)
    assert f"trigger missing or disabled on {ATTEMPTS}" in err.getvalue()
    assert EVENTS not in err.getvalue()
