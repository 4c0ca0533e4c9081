"""Writes of the verification app: enrollment, speaker models, challenges, verification, audit.

Every function is keyword-only, named ``<entity>_<action>`` and atomic. Audit rows are written by
``verification_attempt_create`` and nowhere else, so the audit trail has one door to guard.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import CharField, Value
from django.utils import timezone

from verification import audit, engine, features, notifications, selectors
from verification.engine import replay
from verification.exceptions import InputError, NoBackgroundModel, NotEnrolled
from verification.models import (
    DIGITS,
    AttemptLabel,
    AuditChained,
    AuditEvent,
    AuditEventKind,
    BackgroundModel,
    Challenge,
    Decision,
    EnrollmentUtterance,
    Reason,
    ReplayFingerprint,
    SpeakerModel,
    UtterancePurpose,
    VerificationAttempt,
    VerificationLockout,
)

# Enrollment beyond this adds nothing measurable and lets one account grow the database and the
# re-adaptation work without bound.
MAX_UTTERANCES_PER_DIGIT = 20
MAX_TEST_UTTERANCES = 200
# Growing lockout delay: VERIFICATION_LOCKOUT_DELAY seconds after the limit, doubling per further
# failure, capped here.
MAX_LOCKOUT_DELAY = timedelta(hours=1)
# 256-bit nonces, URL-safe: the challenge's public id.
NONCE_BYTES = 32
# Fingerprints of the utterances of this many recent attempts (x digits per prompt) are kept per
# user for the replay check; older ones are dropped as new ones arrive.
REPLAY_RECENT_FINGERPRINTS = 100


@dataclass(frozen=True)
class ClientInfo:
    """Who sent a request, as recorded in the audit log."""

    ip: str | None = None
    user_agent: str = ""
    session_key: str = ""


# --------------------------------------------------------------------------------------------------
# Enrollment


def _lock_user(user) -> None:
    """Serialise voiceprint writes of one user (train / delete / retrain) on their user row.

    FOR NO KEY UPDATE, not FOR UPDATE: it still queues these writers behind each other, but does
    not block the FOR KEY SHARE that Postgres takes at COMMIT to check the deferred foreign keys
    of a new audit row. With FOR UPDATE, a transaction holding an audit-chain lock and checking
    its row's user FK waited on this lock while its holder waited on the chain lock: deadlock.
    """
    get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).first()


@transaction.atomic(savepoint=False)
def enrollment_utterance_add(
    *, user, utterance: features.Utterance, purpose: str = UtterancePurpose.ENROLL
) -> EnrollmentUtterance:
    """Store one validated utterance (its prompted digit is required), audited."""
    row = _utterance_store(user=user, utterance=utterance, purpose=purpose)
    _utterance_audit(row)
    return row


def _utterance_store(*, user, utterance: features.Utterance, purpose: str) -> EnrollmentUtterance:
    if utterance.digit is None:
        raise InputError("is required; expected an integer 0..9", field="digit")
    voiced = features.voiced_frames(utterance)
    row = EnrollmentUtterance.objects.create(
        user=user,
        purpose=purpose,
        digit=utterance.digit,
        feature_version=features.FEATURE_VERSION,
        features=EnrollmentUtterance.pack(utterance),
        frame_count=utterance.n_frames,
        mean_rms=float(np.mean(utterance.rms)),
        speech_fraction=float(np.mean(voiced)) if voiced.size else 0.0,
    )
    return row


def _utterance_audit(row: EnrollmentUtterance) -> None:
    audit_event_create(
        kind=AuditEventKind.UTTERANCE_ADDED,
        user=row.user,
        details={
            "utterance": row.pk,
            "purpose": row.purpose,
            "digit": row.digit,
            "frame_count": row.frame_count,
        },
    )


@dataclass(frozen=True)
class _FittedModel:
    ubm_row: BackgroundModel
    model: engine.SpeakerModel
    utterance_count: int


def _speaker_model_fit(
    *, user, status: selectors.EnrollmentStatus, extra: Sequence[features.Utterance] = ()
) -> _FittedModel | None:
    """Adapt a model from the user's stored enrollment utterances plus ``extra`` (not stored
    yet); None while ``status`` is not ready. Pure computation: no write, no audit lock.

    A model of the active background model that keeps its enrollment statistics is extended by
    ``extra`` alone (``engine.enroll_more``, the same model as re-adapting from every stored
    utterance); otherwise every stored utterance is read and the model re-adapted from scratch.
    """
    if not status.ready:
        return None
    ubm_row = selectors.background_model_active()
    if ubm_row is None:
        raise NoBackgroundModel(
            "No active background model: run `python manage.py install_default_ubm`."
        )
    ubm = selectors.background_model_engine(ubm_row)
    total = sum(status.utterances_per_digit.values())
    row = status.model
    # Incremental only when the model covers every stored utterance: one stored while the
    # voiceprint was not ready (a raised minimum) is in no model's statistics.
    covers_stored = row is not None and row.utterance_count == total - len(extra)
    if extra and covers_stored and row.background_model_id == ubm_row.pk:
        previous = selectors.speaker_model_engine(row)
        if previous.has_statistics and previous.ubm_version == ubm.version:
            return _FittedModel(ubm_row, engine.enroll_more(ubm, previous, extra), total)
    rows = EnrollmentUtterance.objects.filter(user=user, purpose=UtterancePurpose.ENROLL)
    utterances = [row.to_utterance() for row in rows.order_by("created_at", "id")]
    utterances.extend(extra)
    return _FittedModel(ubm_row, engine.enroll(ubm, utterances), len(utterances))


def _speaker_model_save(
    *, user, fitted: _FittedModel, previous: SpeakerModel | None
) -> SpeakerModel:
    speaker_model = _speaker_model_write(user=user, fitted=fitted, previous=previous)
    _model_trained_audit(user=user, speaker_model=speaker_model, fitted=fitted)
    return speaker_model


def _speaker_model_write(
    *, user, fitted: _FittedModel, previous: SpeakerModel | None
) -> SpeakerModel:
    fields = {
        "background_model": fitted.ubm_row,
        "blob": engine.dump_speaker_model(fitted.model),
        "version": previous.version + 1 if previous else 1,
        "utterance_count": fitted.utterance_count,
        "trained_at": timezone.now(),
    }
    if previous is None:
        speaker_model = SpeakerModel.objects.create(user=user, **fields)
    else:
        # ``previous`` was read under the user's lock (``_lock_user``): update it in place.
        speaker_model = previous
        for name, value in fields.items():
            setattr(speaker_model, name, value)
        speaker_model.save(update_fields=list(fields))
    # This worker's next request for the user (a verification, the next utterance) needs no
    # fetch and parse of the blob just written.
    selectors.speaker_model_cache_put(speaker_model, fitted.model)
    return speaker_model


def _model_trained_audit(*, user, speaker_model: SpeakerModel, fitted: _FittedModel) -> None:
    audit_event_create(
        kind=AuditEventKind.MODEL_TRAINED,
        user=user,
        details={
            "model_version": speaker_model.version,
            "ubm_version": fitted.ubm_row.version,
            "utterance_count": speaker_model.utterance_count,
        },
    )


@transaction.atomic
def speaker_model_train(*, user) -> SpeakerModel | None:
    """(Re-)adapt the user's model from all their stored enrollment utterances.

    Uses the active background model. Returns None (and keeps any existing model) while some digit
    has fewer than VERIFICATION_MIN_UTTERANCES_PER_DIGIT utterances.
    """
    _lock_user(user)
    status = selectors.enrollment_status(user=user)
    fitted = _speaker_model_fit(user=user, status=status)
    if fitted is None:
        return None
    return _speaker_model_save(user=user, fitted=fitted, previous=status.model)


def voiceprint_train(*, user, utterances: Sequence[features.Utterance]) -> SpeakerModel | None:
    """Add enrollment utterances and re-adapt the model once every digit has enough of them;
    -> the model this adapted (None if none)."""
    return _voiceprint_train(user=user, utterances=utterances)[1]


def voiceprint_enroll(
    *, user, utterances: Sequence[features.Utterance]
) -> selectors.EnrollmentStatus:
    """``voiceprint_train``, answered with the enrollment status after it, known inside the same
    transaction: no read after COMMIT, which costs two queries and, with the database lost in
    between, turned an utterance already stored into an error response."""
    return _voiceprint_train(user=user, utterances=utterances)[0]


@transaction.atomic
def _voiceprint_train(
    *, user, utterances: Sequence[features.Utterance]
) -> tuple[selectors.EnrollmentStatus, SpeakerModel | None]:
    """-> (status after, model adapted now or None).

    The model is adapted, and the utterances and the model written, *before* the first audit
    append: that takes the audit chain's lock, held to COMMIT, so every enrollment on the server
    queues behind it; adapting (or writing a model blob) under it made enrollment throughput one
    request at a time for the whole server. The events keep their order in the chain.
    """
    _lock_user(user)
    status = selectors.enrollment_status(user=user)
    counts = dict(status.utterances_per_digit)
    for index, utterance in enumerate(utterances):
        counts[utterance.digit] = counts.get(utterance.digit, 0) + 1
        if counts[utterance.digit] > MAX_UTTERANCES_PER_DIGIT:
            raise InputError(
                f"digit {utterance.digit} already has {MAX_UTTERANCES_PER_DIGIT} enrollment "
                "utterances; delete the voiceprint to start over",
                field=f"utterances[{index}].digit",
            )
    after = dataclasses.replace(
        status,
        utterances_per_digit=counts,
        enrollment_dates=status.enrollment_dates | {timezone.localdate()},
    )
    fitted = _speaker_model_fit(user=user, status=after, extra=utterances)
    rows = [
        _utterance_store(user=user, utterance=utterance, purpose=UtterancePurpose.ENROLL)
        for utterance in utterances
    ]
    speaker_model = None
    if fitted is not None:
        speaker_model = _speaker_model_write(user=user, fitted=fitted, previous=status.model)
    for row in rows:
        _utterance_audit(row)
    if speaker_model is not None:
        _model_trained_audit(user=user, speaker_model=speaker_model, fitted=fitted)
    return dataclasses.replace(after, model=speaker_model or status.model), speaker_model


@transaction.atomic
def voiceprint_delete(*, user, actor=None, reason: str = "") -> dict[str, int]:
    """Delete the user's biometric data: utterances, speaker model, open challenges.

    Audit rows stay (they hold no features). A challenge an audit row points at is kept, since
    the row must keep its context, and closed so it can never be used. ``reason``, when given,
    is recorded in the audit event (e.g. "retention").
    """
    _lock_user(user)
    utterances, _ = EnrollmentUtterance.objects.filter(user=user).delete()
    models_deleted, _ = SpeakerModel.objects.filter(user=user).delete()
    fingerprints, _ = ReplayFingerprint.objects.filter(user=user).delete()
    _references.drop_user(user.pk)  # what this process prepared from them (others never ask)
    challenges = Challenge.objects.filter(user=user)
    challenges.filter(used_at__isnull=True).update(used_at=timezone.now())
    challenges_deleted, _ = challenges.filter(attempts__isnull=True).delete()
    counts = {
        "utterances": utterances,
        "speaker_models": models_deleted,
        "challenges": challenges_deleted,
        "replay_fingerprints": fingerprints,
    }
    details = {**counts, "reason": reason} if reason else counts
    audit_event_create(
        kind=AuditEventKind.VOICEPRINT_DELETED, user=user, actor=actor, details=details
    )
    return counts


@transaction.atomic
def voiceprint_expire(*, user, inactive_since) -> dict[str, int] | None:
    """Delete the user's voiceprint if they still have had no voice activity since
    ``inactive_since``, judged again under their lock (an enrollment, or an attempt recorded
    since the retention run chose the user, keeps it); -> the deleted counts, or None if kept."""
    _lock_user(user)
    last = selectors.voice_activity_last(user_ids=[user.pk]).get(user.pk)
    if last is None or last >= inactive_since:
        return None
    return voiceprint_delete(user=user, reason="retention")


@dataclass(frozen=True)
class TestResult:
    utterance: EnrollmentUtterance
    score: float
    threshold: float


@transaction.atomic
def test_utterances_score(
    *, user, utterances: Sequence[features.Utterance]
) -> tuple[list[TestResult], float]:
    """Store held-out utterances of the enrolled user and score each, and all together, against
    their model (the seed's ``/test``). Returns (per-utterance results, overall score)."""
    speaker_row = selectors.speaker_model_get(user=user)
    if speaker_row is None:
        raise NotEnrolled("No voiceprint yet: train one first (POST voiceprint/train/).")
    stored = EnrollmentUtterance.objects.filter(user=user, purpose=UtterancePurpose.TEST).count()
    if stored + len(utterances) > MAX_TEST_UTTERANCES:
        raise InputError(
            f"at most {MAX_TEST_UTTERANCES} test utterances are kept; delete the voiceprint "
            "to start over",
            field="utterances",
        )
    ubm = selectors.background_model_engine(speaker_row.background_model)
    model = selectors.speaker_model_engine(speaker_row)
    results = []
    for utterance in utterances:
        row = enrollment_utterance_add(
            user=user, utterance=utterance, purpose=UtterancePurpose.TEST
        )
        results.append(TestResult(row, engine.score(ubm, model, [utterance]), ubm.threshold))
    return results, engine.score(ubm, model, utterances)


# --------------------------------------------------------------------------------------------------
# Challenges


@transaction.atomic
def challenge_create(*, user, session_key: str = "") -> Challenge:
    """Issue a random digit string with a single-use 256-bit nonce, bound to the user (and to
    the browser session when the request came with one)."""
    if not SpeakerModel.objects.filter(user=user).exists():
        raise NotEnrolled("No voiceprint yet: enroll before asking for a challenge.")
    now = timezone.now()
    # Expired, never-audited challenges are dead weight: drop them as new ones are issued.
    Challenge.objects.filter(user=user, expires_at__lt=now, attempts__isnull=True).delete()
    digits = "".join(str(d) for d in _challenge_digits(settings.VERIFICATION_CHALLENGE_DIGITS))
    return Challenge.objects.create(
        user=user,
        session_key=session_key or "",
        digits=digits,
        nonce=secrets.token_urlsafe(NONCE_BYTES),
        expires_at=now + timedelta(seconds=settings.VERIFICATION_CHALLENGE_TTL),
    )


def _challenge_digits(k: int) -> list[int]:
    """k random digits, distinct within every run of ten and never twice in a row.

    Distinct digits are what the engine is measured on (manage.py evaluate prompts distinct
    labels), and a repeated digit would let one recording answer two prompts.
    """
    rng = secrets.SystemRandom()
    out: list[int] = []
    while len(out) < k:
        block = rng.sample(list(DIGITS), len(DIGITS))
        if out and block[0] == out[-1]:
            block.append(block.pop(0))
        out.extend(block)
    return out[:k]


@functools.cache
def _challenge_spend_sql() -> str:
    """UPDATE ... RETURNING (Postgres, and SQLite 3.35+, which Django 6 requires): spends an
    open challenge of a nonce and hands it back whole."""
    quote, meta = connection.ops.quote_name, Challenge._meta
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    used_at, nonce = (quote(meta.get_field(name).column) for name in ("used_at", "nonce"))
    return (
        f"UPDATE {quote(meta.db_table)} SET {used_at} = %s "  # noqa: S608 - names from the model
        f"WHERE {nonce} = %s AND {used_at} IS NULL RETURNING {columns}"
    )


def _challenge_consume(
    *, user, challenge_id: str, session_key: str, now
) -> tuple[str | None, Challenge | None]:
    """Look the challenge up and spend it. Returns (reject reason or None, challenge or None).

    The nonce is consumed with one conditional UPDATE (``WHERE used_at IS NULL``) that returns
    the row: of two parallel requests with one nonce exactly one gets it, and an open challenge
    costs one statement. A challenge presented by someone else is spent too, so an intercepted
    nonce dies on first use.
    """
    at = connection.ops.adapt_datetimefield_value(now)  # as the database takes a raw parameter
    spent = list(Challenge.objects.raw(_challenge_spend_sql(), [at, challenge_id]))
    consumed = bool(spent)
    challenge = spent[0] if spent else Challenge.objects.filter(nonce=challenge_id).first()
    if challenge is None:
        return Reason.UNKNOWN_CHALLENGE, None
    if challenge.user_id != user.pk:
        return Reason.FOREIGN_CHALLENGE, challenge
    if not consumed:
        return Reason.REPLAYED_CHALLENGE, challenge
    if challenge.expires_at <= now:
        return Reason.EXPIRED_CHALLENGE, challenge
    if challenge.session_key and not secrets.compare_digest(challenge.session_key, session_key):
        return Reason.SESSION_MISMATCH, challenge
    return None, challenge


# --------------------------------------------------------------------------------------------------
# Lockout (DESIGN §6): counters in the database, changed only under select_for_update.


def _lockout_enabled() -> bool:
    return settings.VERIFICATION_LOCKOUT_FAILURES > 0


def _lockout_for_update(user) -> VerificationLockout:
    """The user's lockout row, locked: one query once it exists (every scored attempt)."""
    lockout = VerificationLockout.objects.select_for_update().filter(user=user).first()
    if lockout is None:
        VerificationLockout.objects.get_or_create(user=user)
        lockout = VerificationLockout.objects.select_for_update().get(user=user)
    return lockout


def _lockout_gate(lockout: VerificationLockout, now) -> tuple[str, int | None] | None:
    """(reason, retry-after seconds) when the user may not attempt now, else None."""
    if lockout.disabled_at is not None:
        return Reason.VOICE_DISABLED, None
    if lockout.locked_until is not None and lockout.locked_until > now:
        return Reason.LOCKED_OUT, math.ceil((lockout.locked_until - now).total_seconds())
    return None


def _lockout_charge(lockout: VerificationLockout, now) -> None:
    """Count one failure. Called *before* scoring for attempts that will be scored (refunded on
    accept), so a crash or a flood of parallel requests can never score more than allowed."""
    limit = settings.VERIFICATION_LOCKOUT_FAILURES
    lockout.consecutive_failures += 1
    lockout.total_failures += 1
    if lockout.consecutive_failures >= limit:
        over = lockout.consecutive_failures - limit
        base = timedelta(seconds=settings.VERIFICATION_LOCKOUT_DELAY)
        delay = base * 2 ** min(over, 16)
        lockout.locked_until = now + min(delay, max(MAX_LOCKOUT_DELAY, base))
    # Failures since the last accept: a genuine user's occasional rejections over the years
    # must not add up to a disabled factor; an attacker, who never gets accepted, reaches it.
    if lockout.consecutive_failures >= settings.VERIFICATION_LOCKOUT_DISABLE_AFTER:
        lockout.disabled_at = lockout.disabled_at or now
    lockout.save()


def _lockout_alert(user, lockout: VerificationLockout) -> None:
    """After a failure that stands: e-mail the owner if it was the one that locked the voice
    factor (the first lock of a streak) or turned it off."""
    failures = lockout.consecutive_failures
    if lockout.disabled_at is not None and failures == settings.VERIFICATION_LOCKOUT_DISABLE_AFTER:
        kind = notifications.DISABLED
    elif failures == settings.VERIFICATION_LOCKOUT_FAILURES:
        kind = notifications.LOCKED
    else:
        return
    notifications.voice_factor_alert_on_commit(user=user, kind=kind, failures=failures)


def _lockout_refund(lockout: VerificationLockout) -> None:
    """An accepted attempt: undo its charge and reset the consecutive count."""
    lockout.consecutive_failures = 0
    lockout.total_failures = max(lockout.total_failures - 1, 0)
    lockout.locked_until = None
    # Only the charge of this very attempt can have disabled it (a disabled user is not scored).
    lockout.disabled_at = None
    lockout.save()


@transaction.atomic
def verification_lockout_reset(*, user, actor=None) -> VerificationLockout:
    """Staff reset: clear every counter and re-enable the voice factor (audited, with the
    counters as they were)."""
    lockout = _lockout_for_update(user)
    locked = lockout.locked_until is not None and lockout.locked_until > timezone.now()
    audit_event_create(
        kind=AuditEventKind.LOCKOUT_RESET,
        user=user,
        actor=actor,
        details={
            "consecutive_failures": lockout.consecutive_failures,
            "total_failures": lockout.total_failures,
            "was_locked": locked,
            "was_disabled": lockout.disabled_at is not None,
        },
    )
    lockout.consecutive_failures = 0
    lockout.total_failures = 0
    lockout.locked_until = None
    lockout.disabled_at = None
    lockout.save()
    return lockout


# --------------------------------------------------------------------------------------------------
# Audit chain (``verification.audit``): append-only, hash-chained, one writer at a time

# pg_advisory_xact_lock keys, one per chain ("SA" + chain number): writers of one chain queue
# up until the holder commits, so each new row links to the committed head.
AUDIT_LOCK_KEYS = {"attempt": 0x5341_0001, "event": 0x5341_0002}


def _audit_append(model: type[AuditChained], **fields) -> AuditChained:
    """Insert one chained row: lock the chain, read its head, hash, insert.

    Must run inside the caller's transaction (the lock is released at its commit). On SQLite
    writers are serialised by the database itself; the unique ``seq`` refuses a fork anyway.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEYS[model.AUDIT_CHAIN]])
    head = model.objects.order_by("-seq").values_list("seq", "entry_hash").first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, audit.GENESIS)
    row = model(seq=seq, prev_hash=prev, created_at=timezone.now(), **fields)
    # Hash what the database will hand back: field-normalised values (IPv6 spelling, floats).
    for name in model.AUDIT_FIELDS:
        field = model._meta.get_field(name)
        if not field.is_relation:
            setattr(row, field.attname, field.to_python(getattr(row, field.attname)))
    row.entry_hash = audit.entry_hash(model.AUDIT_CHAIN, row.audit_content(), prev)
    row.save(force_insert=True)
    return row


@transaction.atomic(savepoint=False)
def audit_event_create(*, kind: str, user, actor=None, details: dict | None = None) -> AuditEvent:
    """Append one AuditEvent (small facts only: ids, counts, versions; never features)."""
    return _audit_append(AuditEvent, kind=kind, user=user, actor=actor, details=details or {})


@transaction.atomic
def attempt_label_set(*, attempt: VerificationAttempt, truth: str, actor, note: str = ""):
    """Staff ground truth for an attempt (genuine / impostor); relabelling replaces the label
    and, like the first labelling, is audited."""
    if truth not in AttemptLabel.Truth.values:
        raise InputError(f"expected one of {AttemptLabel.Truth.values}", field="truth")
    label, _ = AttemptLabel.objects.update_or_create(
        attempt=attempt, defaults={"truth": truth, "labelled_by": actor, "note": note[:200]}
    )
    audit_event_create(
        kind=AuditEventKind.ATTEMPT_LABELLED,
        user=attempt.user,
        actor=actor,
        details={"attempt": attempt.pk, "attempt_seq": attempt.seq, "truth": truth},
    )
    return label


# --------------------------------------------------------------------------------------------------
# Verification and its audit trail


@transaction.atomic(savepoint=False)
def verification_attempt_create(
    *,
    user,
    decision: str,
    reason: str,
    client: ClientInfo,
    challenge: Challenge | None = None,
    background_model: BackgroundModel | None = None,
    score: float | None = None,
    threshold: float | None = None,
    frame_count: int = 0,
    speaker_model_version: int | None = None,
    latency_ms: int = 0,
) -> VerificationAttempt:
    """Append one row to the audit log. The only writer of VerificationAttempt rows."""
    return _audit_append(
        VerificationAttempt,
        user=user,
        challenge=challenge,
        background_model=background_model,
        decision=decision,
        reason=reason,
        score=score,
        threshold=threshold,
        frame_count=frame_count,
        speaker_model_version=speaker_model_version,
        ubm_version=background_model.version if background_model else "",
        client_ip=client.ip,
        user_agent=client.user_agent[:512],
        latency_ms=latency_ms,
    )


@dataclass(frozen=True)
class ScoreOutcome:
    attempt: VerificationAttempt
    retry_after: int | None = None

    @property
    def accepted(self) -> bool:
        return self.attempt.decision == Decision.ACCEPT


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def verification_score(
    *,
    user,
    challenge_id: str,
    utterances: Sequence[features.Utterance],
    client: ClientInfo,
) -> ScoreOutcome:
    """Verify a response to a challenge; every outcome writes exactly one audit row.

    Two transactions by design (DESIGN §6: lockout counters are committed *before* scoring):

    1. under the user's lockout row lock: lockout gate, enrollment, challenge (consumed),
       prompt/response shape, replay of features already seen (``engine.replay``; the
       attempt's fingerprints are remembered); a failure is charged here, and a request
       rejected at this stage is audited in the same transaction;
    2. the engine scores with no lock held;
    3. under the lock again: an accept refunds the charge; the decision is audited.
    """
    started = time.monotonic()
    lockout_on = _lockout_enabled()
    reject = Decision.REJECT

    with transaction.atomic():
        now = timezone.now()
        lockout = _lockout_for_update(user) if lockout_on else None
        gate = _lockout_gate(lockout, now) if lockout else None
        if gate is not None:
            reason, retry_after = gate
            attempt = verification_attempt_create(
                user=user,
                decision=reject,
                reason=reason,
                client=client,
                latency_ms=_elapsed_ms(started),
            )
            return ScoreOutcome(attempt, retry_after)

        speaker_row = selectors.speaker_model_get(user=user)
        if speaker_row is None:
            attempt = verification_attempt_create(
                user=user,
                decision=reject,
                reason=Reason.NOT_ENROLLED,
                client=client,
                latency_ms=_elapsed_ms(started),
            )
            return ScoreOutcome(attempt)

        if lockout is None:
            # No lockout row to serialise on: the replay check below still needs a per-user
            # order, or two parallel copies would each miss the other.
            _lock_user(user)
        reason, challenge = _challenge_consume(
            user=user, challenge_id=challenge_id, session_key=client.session_key, now=now
        )
        if reason is None and not _response_matches_prompt(challenge, utterances):
            reason = Reason.WRONG_CONTENT
        if reason is None:
            probes = [replay.fingerprint(utterance.mel_bands) for utterance in utterances]
            prepared = replay.prepare(probes)  # each as a reference: for the next ones, and later
            held = _replay_held(user=user, digits=challenge.digit_list)
            if _replay_detected(
                held=held, prompted=challenge.digit_list, probes=probes, prepared=prepared
            ):
                reason = Reason.REPLAY
            _replay_remember(
                user=user,
                prompted=challenge.digit_list,
                probes=probes,
                prepared=prepared,
                held=held,
            )
        if lockout is not None:
            _lockout_charge(lockout, now)
            if reason is not None:  # a failure that stands: scoring cannot refund it
                _lockout_alert(user, lockout)
        if reason is not None:
            attempt = verification_attempt_create(
                user=user,
                decision=reject,
                reason=reason,
                client=client,
                challenge=challenge,
                background_model=speaker_row.background_model,
                speaker_model_version=speaker_row.version,
                frame_count=sum(u.n_frames for u in utterances),
                latency_ms=_elapsed_ms(started),
            )
            return ScoreOutcome(attempt)

    ubm = selectors.background_model_engine(speaker_row.background_model)
    model = selectors.speaker_model_engine(speaker_row)
    if not set(challenge.digit_list) <= set(model.digits):
        # Only a model trained on part of the digits (older data) gets here; never a 500.
        verdict = engine.Verdict(False, Reason.WRONG_CONTENT, math.nan, ubm.threshold, 0)
    else:
        verdict = engine.verify(ubm, model, challenge.digit_list, utterances)

    with transaction.atomic():
        if lockout_on:
            lockout = _lockout_for_update(user)
            if verdict.accepted:
                _lockout_refund(lockout)
            else:
                _lockout_alert(user, lockout)
        attempt = verification_attempt_create(
            user=user,
            decision=Decision.ACCEPT if verdict.accepted else reject,
            reason=verdict.reason,
            client=client,
            challenge=challenge,
            background_model=speaker_row.background_model,
            score=verdict.score if math.isfinite(verdict.score) else None,
            threshold=verdict.threshold,
            frame_count=sum(u.n_frames for u in utterances),
            speaker_model_version=speaker_row.version,
            latency_ms=_elapsed_ms(started),
        )
    return ScoreOutcome(attempt)


class _ReferenceCache:
    """Prepared replay references (``replay.Reference``) by row, per process, least recently
    used dropped first beyond ``max_bytes``. Keyed by (kind, user id, row id, created_at):
    stored utterances and remembered fingerprints never change (rows are only added and
    deleted), so each is fetched and prepared once instead of on every attempt, where preparing
    them was most of the replay check's time. A key of a deleted row is never asked for again;
    deleting a voiceprint also drops the user's entries from this process at once."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, replay.Reference] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[tuple]) -> dict[tuple, replay.Reference]:
        with self._lock:
            found = {key: self._items[key] for key in keys if key in self._items}
            for key in found:
                self._items.move_to_end(key)
        return found

    def put_many(self, items: dict[tuple, replay.Reference]) -> None:
        with self._lock:
            for key, reference in items.items():
                old = self._items.pop(key, None)
                self._bytes += reference.nbytes - (old.nbytes if old is not None else 0)
                self._items[key] = reference
            while self._bytes > self.max_bytes and self._items:
                self._bytes -= self._items.popitem(last=False)[1].nbytes

    def drop_user(self, user_id: int) -> None:
        with self._lock:
            for key in [key for key in self._items if key[1] == user_id]:
                self._bytes -= self._items.pop(key).nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


# About 8-10 KB per reference of a one-second digit: the default 48 MB hold the stored and recent
# utterances of some 30 users with full memories, per worker process.
_references = _ReferenceCache(max_bytes=settings.VERIFICATION_REPLAY_CACHE_MB << 20)


@dataclass(frozen=True)
class _Held:
    """What the server holds of a user for the replay check, read in one query under the user's
    lock: cache keys (kind, user id, row id, created_at) with their digits, of the stored
    (enrollment and test) utterances of the prompted digits and of every recent fingerprint
    (all digits: which of them to drop after this attempt follows from them)."""

    user_id: int
    rows: list[tuple[tuple, int]]

    @property
    def recent(self) -> list[tuple]:
        return [key for key, _ in self.rows if key[0] == "recent"]


def _replay_held(*, user, digits: Sequence[int]) -> _Held:
    """:class:`_Held` for ``user`` answering a prompt of ``digits``: one query (a UNION)."""

    def keyed(query, kind: str):
        label = Value(kind, output_field=CharField())
        return (
            query.order_by().annotate(kind=label).values_list("kind", "id", "created_at", "digit")
        )

    stored = keyed(EnrollmentUtterance.objects.filter(user=user, digit__in=set(digits)), "stored")
    recent = keyed(ReplayFingerprint.objects.filter(user=user), "recent")
    rows = [
        ((kind, user.pk, pk, created_at), int(digit))
        for kind, pk, created_at, digit in stored.union(recent, all=True)
    ]
    return _Held(user_id=user.pk, rows=rows)


def _replay_references(held: _Held, digits: Sequence[int]) -> dict[int, list[replay.Reference]]:
    """{digit: [reference]} of what ``held`` lists of ``digits``: from this process's cache, and
    the feature blobs or fingerprints of the others fetched (one query per kind) and prepared
    once."""
    wanted = {int(d) for d in digits}
    rows = [(key, digit) for key, digit in held.rows if digit in wanted]
    found = _references.get_many([key for key, _ in rows])
    missing = {
        kind: [key[2] for key, _ in rows if key[0] == kind and key not in found]
        for kind in ("stored", "recent")
    }
    fingerprints = {}
    if missing["stored"]:
        for row in EnrollmentUtterance.objects.filter(pk__in=missing["stored"]).only(
            "features", "frame_count", "digit", "created_at"
        ):
            fingerprints[("stored", held.user_id, row.pk, row.created_at)] = replay.fingerprint(
                row.to_utterance().mel_bands
            )
    if missing["recent"]:
        for pk, at, raw in ReplayFingerprint.objects.filter(pk__in=missing["recent"]).values_list(
            "id", "created_at", "fingerprint"
        ):
            fingerprints[("recent", held.user_id, pk, at)] = replay.unpack(bytes(raw))
    if fingerprints:
        fresh = dict(zip(fingerprints, replay.prepare(list(fingerprints.values())), strict=True))
        _references.put_many(fresh)
        found.update(fresh)
    out: dict[int, list[replay.Reference]] = {d: [] for d in wanted}
    for key, digit in rows:
        if key in found:  # a row deleted between the queries no longer counts
            out[digit].append(found[key])
    return out


def _replay_detected(
    *,
    held: _Held,
    prompted: Sequence[int],
    probes: Sequence[np.ndarray],
    prepared: Sequence[replay.Reference],
) -> bool:
    """Whether any utterance (its fingerprint in ``probes``, prepared as a reference in
    ``prepared``) is a near-copy of one the server holds of the user saying its prompted digit
    (``held``): a stored enrollment or test utterance, or a recent attempt."""
    references = _replay_references(held, prompted)
    # Copies inside one attempt count too: one recording must not answer two prompts.
    return replay.any_replay(
        probes, [[*references[int(digit)], *prepared[:i]] for i, digit in enumerate(prompted)]
    )


def _replay_remember(
    *,
    user,
    prompted: Sequence[int],
    probes: Sequence[np.ndarray],
    prepared: Sequence[replay.Reference],
    held: _Held,
) -> None:
    """Keep the fingerprints of a scored attempt, and their prepared references in this process;
    drop the oldest of the user's (``held.recent``) beyond the per-user cap: one INSERT, and a
    DELETE by id once the cap is reached."""
    rows = ReplayFingerprint.objects.bulk_create(
        ReplayFingerprint(user=user, digit=digit, fingerprint=replay.pack(fp))
        for digit, fp in zip(prompted, probes, strict=True)
    )
    # Where the database returns the new ids (Postgres, SQLite 3.35+): the next attempts find
    # these prepared. Should this transaction roll back, their keys are never asked for.
    _references.put_many(
        {
            ("recent", user.pk, row.pk, row.created_at): ref
            for row, ref in zip(rows, prepared, strict=True)
            if row.pk is not None
        }
    )
    # The new rows are the newest; of the others, the oldest go (held under the user's lock,
    # so the list is whole). One statement: the ORM's delete() (collector, signals) cost 4x as
    # much, and nothing depends on these rows.
    excess = len(held.recent) + len(rows) - REPLAY_RECENT_FINGERPRINTS
    if excess <= 0:
        return
    oldest = sorted(held.recent, key=lambda key: (key[3], key[2]))[:excess]
    table = connection.ops.quote_name(ReplayFingerprint._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(  # the table name is the model's; every value is a parameter
            f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(oldest))})",  # noqa: S608
            [key[2] for key in oldest],
        )


@transaction.atomic
def verification_invalid_input_record(*, user, client: ClientInfo) -> VerificationAttempt:
    """Audit a score request whose body failed validation: one reject row, nothing else stored
    (no challenge is consumed, the body is not kept)."""
    return verification_attempt_create(
        user=user, decision=Decision.REJECT, reason=Reason.INVALID_INPUT, client=client
    )


def _response_matches_prompt(
    challenge: Challenge, utterances: Sequence[features.Utterance]
) -> bool:
    """One utterance per prompted digit; a label the client sent must be the prompted digit.

    The labels are never trusted for acceptance (the engine checks what was said); a wrong one
    only lets us reject early.
    """
    prompted = challenge.digit_list
    if len(utterances) != len(prompted):
        return False
    return all(u.digit is None or u.digit == d for u, d in zip(utterances, prompted, strict=True))


# --------------------------------------------------------------------------------------------------
# Background models


@transaction.atomic
def background_model_install(
    *, blob: bytes, activate: bool | None = None, provenance_extra: dict | None = None
) -> tuple[BackgroundModel, bool]:
    """Store an engine UBM blob unless its version is already stored. Returns (row, created).

    ``activate=None`` activates it only when no background model is active yet.
    """
    ubm = engine.load_background_model(blob)
    existing = BackgroundModel.objects.defer("blob").filter(version=ubm.version).first()
    created = existing is None
    row = existing
    if row is None:
        row = BackgroundModel.objects.create(
            version=ubm.version,
            feature_version=ubm.feature_version,
            blob=blob,
            blob_sha256=hashlib.sha256(blob).hexdigest(),
            threshold=float(ubm.threshold),
            provenance={**ubm.provenance, **(provenance_extra or {})},
        )
    if activate is None:
        activate = not BackgroundModel.objects.filter(is_active=True).exists()
    if activate and not row.is_active:
        BackgroundModel.objects.filter(is_active=True).update(is_active=False)
        BackgroundModel.objects.filter(pk=row.pk).update(is_active=True)
        row.is_active = True
    return row, created
