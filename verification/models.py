"""Data model of verification: background models, enrollment, speaker models, challenges,
the audit log of verification attempts and the per-user lockout state.

Binary blobs (model files, feature matrices) are ``BinaryField``s: always read them through
``bytes(...)`` (Postgres hands back a ``memoryview``) and ``.defer()`` them in list queries.
Rows the audit log points at are protected (``on_delete=PROTECT``) so an audit row can never
lose its context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

if TYPE_CHECKING:
    from verification.features import Utterance

# Enrollment features are stored as one float32 matrix per utterance: the 40 mel bands the client
# sent, followed by the rms column, row-major, little-endian. No container format, no pickle.
FEATURE_COLUMNS = 41
FEATURE_DTYPE = np.dtype("<f4")
DIGITS = range(10)


class BackgroundModel(models.Model):
    """A universal background model (engine blob) and the threshold calibrated for it."""

    version = models.CharField(max_length=64, unique=True)
    feature_version = models.CharField(max_length=64)
    blob = models.BinaryField()
    # SHA-256 of ``blob``: identifies the exact bytes (process caches key on it) and lets an
    # auditor check a blob against the file it was installed from.
    blob_sha256 = models.CharField(max_length=64)
    # The decision threshold in force; starts as the blob's calibrated one and may be
    # recalibrated per deployment without rebuilding the blob.
    threshold = models.FloatField()
    provenance = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            # At most one active background model: new speaker models adapt from it.
            models.UniqueConstraint(
                fields=("is_active",),
                condition=Q(is_active=True),
                name="verification_one_active_background_model",
            ),
            models.CheckConstraint(
                condition=~Q(version=""), name="verification_background_model_version_set"
            ),
        ]

    def __str__(self) -> str:
        return f"UBM {self.version}" + (" (active)" if self.is_active else "")


class UtterancePurpose(models.TextChoices):
    ENROLL = "enroll", "enrollment"
    TEST = "test", "held-out test"


class EnrollmentUtterance(models.Model):
    """One spoken digit of a user: the validated client features, kept so that speaker models
    can be re-adapted (new background model, more data) without asking the user again."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrollment_utterances"
    )
    purpose = models.CharField(
        max_length=8, choices=UtterancePurpose.choices, default=UtterancePurpose.ENROLL
    )
    digit = models.PositiveSmallIntegerField()
    feature_version = models.CharField(max_length=64)
    features = models.BinaryField()
    frame_count = models.PositiveIntegerField()
    mean_rms = models.FloatField()
    speech_fraction = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("user", "purpose", "digit"), name="verif_utt_user_purpose")]
        constraints = [
            models.CheckConstraint(
                condition=Q(digit__gte=0, digit__lte=9), name="verification_utterance_digit_0_9"
            ),
            models.CheckConstraint(
                condition=Q(frame_count__gt=0), name="verification_utterance_has_frames"
            ),
            models.CheckConstraint(
                condition=Q(speech_fraction__gte=0, speech_fraction__lte=1),
                name="verification_utterance_speech_fraction_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} digit {self.digit} ({self.purpose}, {self.frame_count} frames)"

    @staticmethod
    def pack(utterance: Utterance) -> bytes:
        """(n_frames, 40) mel bands + (n_frames,) rms -> raw float32 bytes of (n_frames, 41)."""
        matrix = np.column_stack([utterance.mel_bands, utterance.rms]).astype(FEATURE_DTYPE)
        return matrix.tobytes(order="C")

    def to_utterance(self) -> Utterance:
        """The stored features as the engine's input type (``features`` must not be deferred)."""
        from verification.features import Utterance

        matrix = np.frombuffer(bytes(self.features), dtype=FEATURE_DTYPE)
        matrix = matrix.reshape(self.frame_count, FEATURE_COLUMNS).astype(np.float32)
        return Utterance(
            mel_bands=np.ascontiguousarray(matrix[:, :40]),
            rms=np.ascontiguousarray(matrix[:, 40]),
            digit=self.digit,
        )


class SpeakerModel(models.Model):
    """The adapted model of one user. ``version`` counts (re)trainings of this voiceprint so an
    audit row can name exactly which model decided."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="speaker_model"
    )
    background_model = models.ForeignKey(
        BackgroundModel, on_delete=models.PROTECT, related_name="speaker_models"
    )
    blob = models.BinaryField()
    version = models.PositiveIntegerField(default=1)
    utterance_count = models.PositiveIntegerField()
    trained_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(utterance_count__gt=0), name="verification_speaker_model_has_data"
            ),
        ]

    def __str__(self) -> str:
        return f"voiceprint of {self.user} v{self.version}"


class Challenge(models.Model):
    """A prompted digit string. The client refers to it by its unguessable ``nonce`` (the API
    calls it ``id``); it is consumed once, atomically, by the score request."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="challenges"
    )
    # Session the challenge was issued to (browser flow); empty for token clients.
    session_key = models.CharField(max_length=64, blank=True)
    digits = models.CharField(max_length=16)
    nonce = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")),
                name="verification_challenge_expires_after_creation",
            ),
            models.CheckConstraint(
                condition=~Q(digits=""), name="verification_challenge_has_digits"
            ),
        ]

    def __str__(self) -> str:
        state = "used" if self.used_at else "open"
        return f"challenge {self.pk} for {self.user} ({state})"

    @property
    def digit_list(self) -> list[int]:
        return [int(d) for d in self.digits]


class Decision(models.TextChoices):
    ACCEPT = "accept", "accept"
    REJECT = "reject", "reject"


class Reason(models.TextChoices):
    ACCEPTED = "accepted", "accepted"
    LOW_SCORE = "low_score", "voice did not match"
    WRONG_CONTENT = "wrong_content", "digits did not match the prompt"
    UNKNOWN_CHALLENGE = "unknown_challenge", "no such challenge"
    FOREIGN_CHALLENGE = "foreign_challenge", "challenge issued to someone else"
    SESSION_MISMATCH = "session_mismatch", "challenge issued to another session"
    REPLAYED_CHALLENGE = "replayed_challenge", "challenge already used"
    EXPIRED_CHALLENGE = "expired_challenge", "challenge expired"
    NOT_ENROLLED = "not_enrolled", "no voiceprint"
    LOCKED_OUT = "locked_out", "too many failures, try later"
    VOICE_DISABLED = "voice_disabled", "voice factor disabled until a staff reset"
    # Reserved for the security work (near-duplicate features, invalid input audit).
    REPLAY = "replay", "features replayed"
    INVALID_INPUT = "invalid_input", "invalid input"


class AuditChained(models.Model):
    """A row of an append-only, hash-chained audit table (``verification.audit``).

    ``seq`` is the position in the chain (1, 2, ...; unique, so two writers can never fork it),
    ``prev_hash`` the previous row's ``entry_hash``. ``created_at`` is set before the insert
    (not ``auto_now_add``) because it is part of the hashed content. The database refuses
    UPDATE and DELETE on these tables (triggers of migration 0002).
    """

    AUDIT_CHAIN = ""
    AUDIT_FIELDS: tuple[str, ...] = ()

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        abstract = True

    def audit_content(self) -> dict:
        """The hashed fields of this row, as plain values (foreign keys by id)."""
        content = {"seq": self.seq}
        for name in self.AUDIT_FIELDS:
            field = self._meta.get_field(name)
            content[name] = getattr(self, field.attname)
        return content


class VerificationAttempt(AuditChained):
    """The audit log: one row per verification request, whatever the outcome.

    Holds the decision and its context, never feature arrays. Rows are written only by
    ``services.verification_attempt_create``.
    """

    AUDIT_CHAIN = "attempt"
    AUDIT_FIELDS = (
        "created_at",
        "user",
        "challenge",
        "background_model",
        "decision",
        "reason",
        "score",
        "threshold",
        "frame_count",
        "speaker_model_version",
        "ubm_version",
        "client_ip",
        "user_agent",
        "latency_ms",
    )

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verification_attempts"
    )
    challenge = models.ForeignKey(
        Challenge, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    background_model = models.ForeignKey(
        BackgroundModel, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    score = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(default=0)
    speaker_model_version = models.PositiveIntegerField(null=True, blank=True)
    ubm_version = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("user", "-created_at"), name="verif_attempt_user_time")]
        constraints = [
            # An accept is only ever written with the "accepted" reason, and vice versa.
            models.CheckConstraint(
                condition=(
                    Q(decision=Decision.ACCEPT, reason=Reason.ACCEPTED)
                    | (Q(decision=Decision.REJECT) & ~Q(reason=Reason.ACCEPTED))
                ),
                name="verification_attempt_decision_matches_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.pk} by {self.user}: {self.decision} ({self.reason})"


class VerificationLockout(models.Model):
    """Failure counters of one user (DESIGN §6). Updated only under ``select_for_update``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verification_lockout"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    total_failures = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(consecutive_failures__lte=F("total_failures")),
                name="verification_lockout_consecutive_within_total",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"lockout of {self.user}: {self.consecutive_failures} consecutive, "
            f"{self.total_failures} total" + (", disabled" if self.disabled_at else "")
        )


class AuditEventKind(models.TextChoices):
    UTTERANCE_ADDED = "utterance_added", "enrollment utterance added"
    MODEL_TRAINED = "model_trained", "speaker model (re)trained"
    VOICEPRINT_DELETED = "voiceprint_deleted", "voiceprint deleted"
    LOCKOUT_RESET = "lockout_reset", "lockout reset"
    ATTEMPT_LABELLED = "attempt_labelled", "attempt labelled"
    ACCOUNT_DELETED = "account_deleted", "account deleted (anonymised)"


class AuditEvent(AuditChained):
    """The audit log of everything around verification that is not an attempt: enrollment
    changes, voiceprint deletions, lockout resets, staff labels. ``details`` holds small facts
    (digit, counts, versions), never features. Written only by ``services.audit_event_create``.
    """

    AUDIT_CHAIN = "event"
    AUDIT_FIELDS = ("created_at", "kind", "user", "actor", "details")

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    kind = models.CharField(max_length=32, choices=AuditEventKind.choices)
    # The user the event is about.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="audit_events"
    )
    # Who did it, when not the user themself (a staff member resetting a lockout).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events_performed",
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("user", "-created_at"), name="verif_event_user_time")]

    def __str__(self) -> str:
        return f"event {self.seq}: {self.kind} of {self.user}"


class AttemptLabel(models.Model):
    """Staff ground truth for one attempt (was it really the user?), kept apart from the
    append-only log so a label can be corrected; every labelling is itself an AuditEvent."""

    class Truth(models.TextChoices):
        GENUINE = "genuine", "genuine (the user)"
        IMPOSTOR = "impostor", "impostor"

    attempt = models.OneToOneField(
        VerificationAttempt, on_delete=models.PROTECT, related_name="label"
    )
    truth = models.CharField(max_length=8, choices=Truth.choices)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="attempt_labels"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"attempt {self.attempt_id} labelled {self.truth}"


class ReplayFingerprint(models.Model):
    """A compact fingerprint of one utterance of a recent verification attempt, kept only so a
    later submission of the same (or slightly altered) features is refused as a replay.

    ``engine.replay.fingerprint``: a peak-relative log spectrogram quantised to 0.54 dB over the
    top 40 dB (uint8, 40 bands per frame), a quarter of the features' size. Like the stored
    enrollment features, it describes the voice: deleted with the voiceprint, exported with the
    user's data; only the newest ``services.REPLAY_RECENT_FINGERPRINTS`` per user are kept.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="replay_fingerprints"
    )
    # The digit the utterance was prompted for: a replay is checked against the same digit.
    digit = models.PositiveSmallIntegerField()
    fingerprint = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("user", "digit"), name="verif_replay_user_digit")]
        constraints = [
            models.CheckConstraint(
                condition=Q(digit__gte=0, digit__lte=9), name="verification_replay_digit_0_9"
            ),
        ]

    def __str__(self) -> str:
        return f"replay fingerprint of {self.user} digit {self.digit}"
