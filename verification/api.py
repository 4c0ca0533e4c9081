"""REST API of verification (under /api/v1/): thin viewsets that parse, authorise and serialise.

Writes go through ``services``, reads through ``selectors``; every object is the caller's own
(``get_queryset`` scopes by ``request.user``, another user's id is a 404). The request handlers
are plain functions so the seed's root ``PUT /train|/test|/score`` (``legacy.py``) answer exactly
like the v1 endpoints.
"""

from __future__ import annotations

import json

import numpy as np
from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, get_encoding
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DynamicRoute, Route, SimpleRouter
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import consent
from speakerauth.client_ip import client_ip
from verification import selectors, services
from verification.exceptions import ConsentRequired, InputError, MalformedBody, RequestTooLarge
from verification.features import FeatureError
from verification.models import Reason, VerificationAttempt
from verification.serializers import (
    AttemptDocSerializer,
    AttemptSerializer,
    ChallengeSerializer,
    ErrorSerializer,
    FeatureContractSerializer,
    ScoredAttemptSerializer,
    ScoreRequestSerializer,
    ScoreResponseSerializer,
    StaffAttemptSerializer,
    TestResponseSerializer,
    TestUtteranceResultSerializer,
    TrainResponseSerializer,
    UtterancesRequest,
    VoiceprintStatusSerializer,
    feature_contract,
    parse_score_body,
    parse_utterances_body,
)

# --------------------------------------------------------------------------------------------------
# Parsing


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


# The deepest legitimate body is {"utterances": [{"mel_bands": [[...]]}]}: depth 4.
MAX_JSON_DEPTH = 16
_BRACKET_DEPTH = np.zeros(256, dtype=np.int8)
_BRACKET_DEPTH[[ord("["), ord("{")]] = 1
_BRACKET_DEPTH[[ord("]"), ord("}")]] = -1


def _nesting_depth(raw: bytes) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings only over-count: our
    bodies' strings are contract names and base64, which contain none)."""
    if not raw:
        return 0
    steps = _BRACKET_DEPTH[np.frombuffer(raw, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int32).max())


class StrictJSONParser(BaseParser):
    """JSON bodies, strictly: size-bounded (413), one document, no duplicate keys, bounded depth.

    DRF's own parser reads the request stream directly, bypassing Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE check; this one enforces it before reading more than the limit.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = context.get("request")
        if limit is not None and request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise RequestTooLarge(f"Request body too large: at most {limit} bytes.")
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"Request body too large: at most {limit} bytes.")
        encoding = get_encoding(context)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise MalformedBody(f"Request body is not valid {encoding} text.") from exc
        if _nesting_depth(text.encode("utf-8")) > MAX_JSON_DEPTH:
            raise MalformedBody(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            return json.loads(text, object_pairs_hook=_object_without_duplicates)
        except _DuplicateKey as exc:
            raise MalformedBody(f"Duplicate JSON key {exc.args[0]!r}.") from exc
        except RecursionError as exc:
            raise MalformedBody("JSON nested too deeply.") from exc
        except ValueError as exc:
            raise MalformedBody(f"JSON parse error - {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Shared request handling (v1 viewsets and legacy root views)


def _session_key(request: Request) -> str:
    """The browser session, when (and only when) the request was session-authenticated."""
    if isinstance(request.successful_authenticator, SessionAuthentication):
        return request.session.session_key or ""
    return ""


def client_info(request: Request) -> services.ClientInfo:
    return services.ClientInfo(
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        session_key=_session_key(request),
    )


def scores_visible(request: Request) -> bool:
    """Scores enable hill-climbing: only staff, or evaluation deployments, see them."""
    return bool(request.user.is_staff or settings.VERIFICATION_EXPOSE_SCORE)


def status_response(user) -> dict:
    return VoiceprintStatusSerializer(selectors.enrollment_status(user=user)).data


def handle_train(request: Request) -> Response:
    if not consent.has_current_consent(user=request.user):
        raise ConsentRequired(
            "Enrollment needs your consent first: GET /api/v1/consent/ for the text, then POST "
            f'{{"version": "{consent.CONSENT_VERSION}", "agreed": true}} to /api/v1/consent/.'
        )
    utterances = parse_utterances_body(request.data)
    after = services.voiceprint_enroll(user=request.user, utterances=utterances)
    body = {**VoiceprintStatusSerializer(after).data, "added": len(utterances)}
    return Response(body, status=status.HTTP_201_CREATED)


def handle_test(request: Request) -> Response:
    utterances = parse_utterances_body(request.data)
    results, overall = services.test_utterances_score(user=request.user, utterances=utterances)
    exposed = scores_visible(request)
    rows = []
    for result in results:
        row = TestUtteranceResultSerializer(result.utterance).data
        if exposed:
            row["score"] = result.score
            row["passed"] = result.score >= result.threshold
        rows.append(row)
    body = {"added": len(results), "utterances": rows}
    if exposed and results:
        threshold = results[0].threshold
        body.update(score=overall, threshold=threshold, passed=overall >= threshold)
    return Response(body, status=status.HTTP_201_CREATED)


# A score request failing on these is still a verification request: it is audited, then answered.
SCORE_INPUT_ERRORS = (
    InputError,
    FeatureError,
    RequestTooLarge,
    exceptions.ParseError,
    exceptions.UnsupportedMediaType,
)


def handle_score(request: Request) -> Response:
    try:
        challenge_id, utterances = parse_score_body(request.data)
    except SCORE_INPUT_ERRORS:
        services.verification_invalid_input_record(user=request.user, client=client_info(request))
        raise
    outcome = services.verification_score(
        user=request.user,
        challenge_id=challenge_id,
        utterances=utterances,
        client=client_info(request),
    )
    attempt = outcome.attempt
    body = {"decision": attempt.decision, "reason": attempt.reason, "attempt": attempt.pk}
    if scores_visible(request):
        body.update(score=attempt.score, threshold=attempt.threshold)
    headers = {}
    code = status.HTTP_200_OK
    if outcome.retry_after is not None:
        body["retry_after"] = outcome.retry_after
        headers["Retry-After"] = str(outcome.retry_after)
        code = status.HTTP_429_TOO_MANY_REQUESTS
    elif attempt.reason == Reason.VOICE_DISABLED:
        code = status.HTTP_403_FORBIDDEN
    return Response(body, status=code, headers=headers)


# --------------------------------------------------------------------------------------------------
# Documentation pieces shared by v1 and legacy views


def _errors(*codes: int) -> dict:
    text = {
        400: "Invalid body: `field` names the input, `detail` what was expected. Nothing stored.",
        401: "Not authenticated.",
        403: "Not allowed: CSRF failure (session clients), no consent to the current text "
        "(enrollment), or the voice factor is disabled.",
        404: "Not found (or not yours).",
        409: "Not enrolled yet.",
        413: "Request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
        415: "Content-Type is not application/json.",
        429: "Throttled, or locked out after repeated failures; see Retry-After.",
        503: "No active background model on this server.",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


FEATURE_ERRORS = (400, 401, 403, 413, 415, 429)

TRAIN_SCHEMA = extend_schema(
    summary="Add enrollment utterances",
    description=(
        "Store one utterance (`{digit, feature_version, ..., mel_bands, rms}`) or several "
        '(`{"utterances": [...]}`); the speaker model is (re-)adapted from all stored utterances '
        "once every digit 0..9 has VERIFICATION_MIN_UTTERANCES_PER_DIGIT of them. "
        "Returns the enrollment progress."
    ),
    request=UtterancesRequest,
    responses={201: TrainResponseSerializer, **_errors(*FEATURE_ERRORS, 503)},
    tags=["voiceprint"],
)
TEST_SCHEMA = extend_schema(
    summary="Score held-out utterances",
    description=(
        "Store held-out utterances of the enrolled caller (never used for training) and score "
        "them against the model. Scores appear only for staff or with VERIFICATION_EXPOSE_SCORE."
    ),
    request=UtterancesRequest,
    responses={201: TestResponseSerializer, **_errors(*FEATURE_ERRORS, 409)},
    tags=["voiceprint"],
)
SCORE_SCHEMA = extend_schema(
    summary="Answer a challenge (verify)",
    description=(
        '`{"challenge": id, "utterances": [one per prompted digit, in order]}`. Every request '
        "that passes validation writes one audit row; a used, expired, foreign or unknown "
        "challenge, or a response that does not match the prompt, is a `reject`. After "
        "VERIFICATION_LOCKOUT_FAILURES consecutive failures the answer is 429 with Retry-After; "
        "after 50 failures the voice factor is disabled (403) until a staff reset."
    ),
    request=ScoreRequestSerializer,
    responses={
        200: ScoreResponseSerializer,
        403: OpenApiResponse(ScoreResponseSerializer, description="Voice factor disabled."),
        429: OpenApiResponse(
            ScoreResponseSerializer, description="Locked out (or throttled); see Retry-After."
        ),
        **_errors(400, 401, 413, 415),
    },
    examples=[
        OpenApiExample(
            "Rejected",
            value={"decision": "reject", "reason": "low_score", "attempt": 42},
            response_only=True,
        )
    ],
    tags=["verification"],
)


# --------------------------------------------------------------------------------------------------
# Views


class FeatureContractView(APIView):
    """The feature contract every client must follow (no authentication needed)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: FeatureContractSerializer}, tags=["voiceprint"])
    def get(self, request: Request) -> Response:
        return Response(FeatureContractSerializer(feature_contract()).data)


class SingletonRouter(SimpleRouter):
    """Routes for a resource there is exactly one of per caller (no id in the URL)."""

    routes = [
        Route(
            url=r"^{prefix}{trailing_slash}$",
            mapping={"get": "retrieve", "delete": "destroy"},
            name="{basename}",
            detail=True,
            initkwargs={},
        ),
        DynamicRoute(
            url=r"^{prefix}/{url_path}{trailing_slash}$",
            name="{basename}-{url_name}",
            detail=True,
            initkwargs={},
        ),
    ]


class RequiredBodySchema(AutoSchema):
    """Marks every request body as required: drf-spectacular cannot infer it for the ``oneOf``
    of train and test (one utterance or a list), and none of these bodies is optional."""

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is not None:
            body["required"] = True
        return body


class VoiceprintViewSet(viewsets.ViewSet):
    """The caller's voiceprint: enrollment status, training, held-out tests, verification."""

    parser_classes = [StrictJSONParser]
    schema = RequiredBodySchema()
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "verification"

    @extend_schema(
        summary="Enrollment status",
        responses={200: VoiceprintStatusSerializer, **_errors(401, 429)},
        tags=["voiceprint"],
    )
    def retrieve(self, request: Request) -> Response:
        return Response(status_response(request.user))

    @extend_schema(
        summary="Delete the voiceprint",
        description="Delete the caller's utterances, speaker model and open challenges. "
        "Audit rows remain (they hold no features).",
        responses={204: None, **_errors(401, 403, 429)},
        tags=["voiceprint"],
    )
    def destroy(self, request: Request) -> Response:
        services.voiceprint_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @TRAIN_SCHEMA
    @action(detail=True, methods=["post", "put"])
    def train(self, request: Request) -> Response:
        return handle_train(request)

    @TEST_SCHEMA
    @action(detail=True, methods=["post", "put"])
    def test(self, request: Request) -> Response:
        return handle_test(request)

    @SCORE_SCHEMA
    @action(detail=True, methods=["post", "put"])
    def score(self, request: Request) -> Response:
        return handle_score(request)


@extend_schema_view(
    create=extend_schema(
        summary="Ask for a challenge",
        description=(
            "Random digits (VERIFICATION_CHALLENGE_DIGITS) to say, with a single-use id that "
            "expires after VERIFICATION_CHALLENGE_TTL seconds. Bound to the caller, and to the "
            "browser session when session-authenticated."
        ),
        request=None,
        responses={201: ChallengeSerializer, **_errors(401, 403, 409, 429)},
        tags=["verification"],
    )
)
class ChallengeViewSet(viewsets.ViewSet):
    parser_classes = [StrictJSONParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "verification"

    def create(self, request: Request) -> Response:
        challenge = services.challenge_create(user=request.user, session_key=_session_key(request))
        return Response(ChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="Verification history",
        description="The caller's attempts, newest first (staff: everyone's, with scores).",
        responses={200: AttemptDocSerializer(many=True), **_errors(401)},
        tags=["verification"],
    ),
    retrieve=extend_schema(
        summary="One verification attempt",
        responses={200: AttemptDocSerializer, **_errors(401, 404)},
        tags=["verification"],
    ),
)
class AttemptViewSet(viewsets.ReadOnlyModelViewSet):
    """Audit rows of verification attempts, read-only."""

    serializer_class = AttemptSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real caller
            return VerificationAttempt.objects.none()
        return selectors.verification_attempts_visible_to(user=self.request.user)

    def get_serializer_class(self):
        user = getattr(self.request, "user", None)
        if user is not None and user.is_staff:
            return StaffAttemptSerializer
        if settings.VERIFICATION_EXPOSE_SCORE:
            return ScoredAttemptSerializer
        return AttemptSerializer
