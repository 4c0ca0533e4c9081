"""Reads of the verification app: enrollment status, attempts, the active background model.

The engine's background model object is cached in process memory, keyed by the row's version,
blob hash and threshold: a UBM is a few hundred kilobytes of arrays and must not be reloaded from
the database and re-validated on every request.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncDate

from verification import audit, engine
from verification.models import (
    DIGITS,
    BackgroundModel,
    EnrollmentUtterance,
    ReplayFingerprint,
    SpeakerModel,
    UtterancePurpose,
    VerificationAttempt,
    VerificationLockout,
)

_UBM_CACHE_SIZE = 4
_ubm_cache: dict[tuple[str, str, float], engine.BackgroundModel] = {}
_ubm_cache_lock = threading.Lock()


def background_model_active() -> BackgroundModel | None:
    """The active background model row, without its blob."""
    return BackgroundModel.objects.defer("blob").filter(is_active=True).first()


def background_model_engine(row: BackgroundModel) -> engine.BackgroundModel:
    """The engine object of a background model row (cached per process), at the row's threshold."""
    key = (row.version, row.blob_sha256, float(row.threshold))
    cached = _ubm_cache.get(key)
    if cached is not None:
        return cached
    blob = BackgroundModel.objects.filter(pk=row.pk).values_list("blob", flat=True).get()
    ubm = engine.load_background_model(bytes(blob))
    if ubm.threshold != row.threshold:
        ubm = dataclasses.replace(ubm, threshold=float(row.threshold))
    with _ubm_cache_lock:
        while len(_ubm_cache) >= _UBM_CACHE_SIZE:
            _ubm_cache.pop(next(iter(_ubm_cache)))
        _ubm_cache[key] = ubm
    return ubm


def speaker_model_get(*, user) -> SpeakerModel | None:
    """The user's speaker model row with its background model, both blobs deferred: read the
    model through ``speaker_model_engine``, which fetches the blob only on a cache miss."""
    return (
        SpeakerModel.objects.select_related("background_model")
        .defer("blob", "background_model__blob")
        .filter(user=user)
        .first()
    )


# Parsed speaker models per process, most recently used last. Parsing and validating a blob, and
# fetching its ~100 KB, cost more than the rest of a verification's reads; a model is a few
# hundred KB in memory, so the cache stays small.
_SPEAKER_CACHE_SIZE = 64
_speaker_cache: OrderedDict[tuple, engine.SpeakerModel] = OrderedDict()
_speaker_cache_lock = threading.Lock()


def _speaker_cache_key(row: SpeakerModel) -> tuple:
    # Every retraining bumps ``version`` and ``trained_at``, and a re-enrollment after a delete
    # is a new row, so the key changes whenever the blob does.
    return (row.pk, row.version, row.trained_at, row.background_model_id)


def speaker_model_cache_put(row: SpeakerModel, model: engine.SpeakerModel) -> None:
    """Remember the engine object of a row just written (its blob is ``dump(model)``)."""
    with _speaker_cache_lock:
        _speaker_cache[_speaker_cache_key(row)] = model
        while len(_speaker_cache) > _SPEAKER_CACHE_SIZE:
            _speaker_cache.popitem(last=False)


def speaker_model_engine(row: SpeakerModel) -> engine.SpeakerModel:
    """The engine object of a speaker model row (cached per process)."""
    key = _speaker_cache_key(row)
    with _speaker_cache_lock:
        cached = _speaker_cache.get(key)
        if cached is not None:
            _speaker_cache.move_to_end(key)
            return cached
    if "blob" in row.get_deferred_fields():
        blob = SpeakerModel.objects.filter(pk=row.pk).values_list("blob", flat=True).get()
    else:
        blob = row.blob
    model = engine.load_speaker_model(bytes(blob))
    speaker_model_cache_put(row, model)
    return model


def enrollment_utterances(*, user, purpose: str = UtterancePurpose.ENROLL) -> QuerySet:
    """The user's stored utterances of one purpose, oldest first, feature blobs deferred."""
    return EnrollmentUtterance.objects.filter(user=user, purpose=purpose).defer("features")


@dataclass(frozen=True)
class EnrollmentStatus:
    utterances_per_digit: dict[int, int]
    test_utterances: int
    min_utterances_per_digit: int
    model: SpeakerModel | None
    # Days (current time zone) on which enrollment utterances were stored: a voice changes
    # between sittings, and takes from more than one make the voiceprint more reliable (README,
    # "Engine and evaluation").
    enrollment_dates: frozenset[date]

    @property
    def digits_missing(self) -> list[int]:
        """Digits that still need utterances before a model can be trained."""
        need = self.min_utterances_per_digit
        return [d for d in DIGITS if self.utterances_per_digit[d] < need]

    @property
    def ready(self) -> bool:
        return not self.digits_missing

    @property
    def trained(self) -> bool:
        return self.model is not None

    @property
    def enrollment_days(self) -> int:
        return len(self.enrollment_dates)


def enrollment_status(*, user) -> EnrollmentStatus:
    # One grouped count for both purposes: this runs several times per enrollment request, and
    # each query is a round trip (an .iterator() on Postgres is three: DECLARE, FETCH, CLOSE).
    counts = Counter()
    test_utterances = 0
    days = set()
    grouped = (
        EnrollmentUtterance.objects.filter(user=user)
        .order_by()
        .annotate(day=TruncDate("created_at"))
        .values_list("purpose", "digit", "day")
        .annotate(n=Count("id"))
    )
    for purpose, digit, day, n in grouped:
        if purpose == UtterancePurpose.ENROLL:
            counts[digit] += n
            days.add(day)
        elif purpose == UtterancePurpose.TEST:
            test_utterances += n
    return EnrollmentStatus(
        utterances_per_digit={d: counts.get(d, 0) for d in DIGITS},
        test_utterances=test_utterances,
        min_utterances_per_digit=settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT,
        enrollment_dates=frozenset(days),
        model=(
            SpeakerModel.objects.defer("blob")
            .select_related("background_model")
            .defer("background_model__blob")
            .filter(user=user)
            .first()
        ),
    )


def verification_attempts_visible_to(*, user) -> QuerySet:
    """Attempts a caller may read: their own; staff read everyone's."""
    attempts = VerificationAttempt.objects.select_related("user")
    if user.is_staff:
        return attempts
    return attempts.filter(user=user)


def verification_lockout_get(*, user) -> VerificationLockout | None:
    return VerificationLockout.objects.filter(user=user).first()


def audit_chain_report(model) -> audit.ChainReport:
    """Walk one audit table (VerificationAttempt or AuditEvent) in chain order and check every
    link (``verification.audit.walk``); streams rows, so it is linear time, constant memory."""
    fields = ("seq", "prev_hash", "entry_hash", *model.AUDIT_FIELDS)
    rows = model.objects.order_by("seq").only(*fields).iterator(chunk_size=2000)
    links = ((row.audit_content(), row.prev_hash, row.entry_hash) for row in rows)
    return audit.walk(model.AUDIT_CHAIN, links)


# Rows that hold a user's voice, and when each was made; then what else counts as voice activity.
_VOICE_DATA = (
    (EnrollmentUtterance, "created_at"),
    (SpeakerModel, "trained_at"),
    (ReplayFingerprint, "created_at"),
)
_VOICE_USE = ((VerificationAttempt, "created_at"),)


def voice_activity_last(*, user_ids: list[int] | None = None) -> dict[int, datetime]:
    """{user id: when they last enrolled, were trained or verified} for every user who holds
    voice data (enrollment utterances, a speaker model or replay fingerprints); ``user_ids``
    narrows it. One grouped query per table."""
    last: dict[int, datetime] = {}
    holders: set[int] = set()
    for model, field in _VOICE_DATA + _VOICE_USE:
        rows = model.objects.filter(user_id__isnull=False)
        if user_ids is not None:
            rows = rows.filter(user_id__in=user_ids)
        holds_voice = (model, field) in _VOICE_DATA
        grouped = rows.order_by().values("user_id").annotate(at=Max(field))
        for user_id, at in grouped.values_list("user_id", "at"):
            if holds_voice:
                holders.add(user_id)
            last[user_id] = max(at, last.get(user_id, at))
    return {user_id: last[user_id] for user_id in holders}
