"""Account endpoints of the API: token issue, the caller's identity, voice consent."""

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import consent, export
from accounts.lockout import django_request
from accounts.models import User
from verification.serializers import ErrorSerializer

# Error answers share one shape ({"detail", "code", "field"}: verification.exceptions).
BAD_CREDENTIALS = OpenApiResponse(
    ErrorSerializer, description="Missing or wrong username/password (`field` names which)."
)
NOT_AUTHENTICATED = OpenApiResponse(ErrorSerializer, description="Not authenticated.")
LOCKED_OUT = OpenApiResponse(
    ErrorSerializer,
    description="Too many failed sign-ins (`code` `login_locked_out`); wait `Retry-After` seconds.",
)


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "is_staff", "date_joined")
        read_only_fields = fields


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token (send it as `Authorization: Token …`);
    DELETE revokes it."""

    @extend_schema(responses={200: TokenResponseSerializer, 400: BAD_CREDENTIALS, 429: LOCKED_OUT})
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        # Issuing a token is a sign-in: last_login moves and the lockout's failure count clears.
        user_logged_in.send(sender=type(user), request=django_request(request), user=user)
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None, 401: NOT_AUTHENTICATED})
    def delete(self, request, *args, **kwargs):
        """Revoke the caller's API token: every script holding it gets 401 until it takes a new
        one. Changing or resetting the password revokes it too."""
        if not request.user.is_authenticated:
            raise NotAuthenticated
        request.user.api_token_revoke()
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_serializer_context(self):
        # The password check must see the Django request, for the lockout (accounts.lockout).
        return {**super().get_serializer_context(), "request": django_request(self.request)}


@extend_schema(responses={200: MeSerializer, 401: NOT_AUTHENTICATED})
@api_view(["GET"])
def me(request: Request) -> Response:
    """The signed-in caller."""
    return Response(MeSerializer(request.user).data)


class ConsentStatusSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="Version of the current consent text.")
    text = serializers.CharField(help_text="The consent text to show before asking.")
    given = serializers.BooleanField(help_text="Whether the caller consented to this version.")
    given_at = serializers.DateTimeField(allow_null=True)


class JSONTrueField(serializers.BooleanField):
    """Only the JSON literal ``true`` is agreement (DRF's BooleanField also takes 1 and "yes")."""

    def to_internal_value(self, data):
        if data is not True:
            self.fail("invalid", input=data)
        return True


class ConsentGiveSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The version of the text the user was shown.")
    agreed = JSONTrueField(
        help_text="Must be the JSON literal true: the user's explicit agreement.",
        error_messages={"invalid": "must be true: consent is an explicit yes"},
    )

    def validate_version(self, value: str) -> str:
        if value != consent.CONSENT_VERSION:
            raise serializers.ValidationError(
                f"expected the current consent version {consent.CONSENT_VERSION!r}, got "
                f"{value[:40]!r}; fetch GET /api/v1/consent/ and show its text"
            )
        return value


def _error(description: str) -> OpenApiResponse:
    from verification.serializers import ErrorSerializer  # the API's one error shape

    return OpenApiResponse(ErrorSerializer, description=description)


CSRF_FAILED = _error("CSRF check failed (session-authenticated browser requests).")


def _consent_body(user) -> dict:
    return ConsentStatusSerializer(consent.consent_status(user=user)).data


@extend_schema(
    methods=["GET"],
    summary="Voice consent: current text and whether you gave it",
    responses={200: ConsentStatusSerializer, 401: NOT_AUTHENTICATED},
    tags=["consent"],
)
@extend_schema(
    methods=["POST"],
    summary="Give voice consent",
    description="Required before any enrollment recording is accepted (`voiceprint/train/`).",
    request=ConsentGiveSerializer,
    responses={
        201: ConsentStatusSerializer,
        400: _error("`field` is `version` (not the current text) or `agreed` (not true)."),
        401: NOT_AUTHENTICATED,
        403: CSRF_FAILED,
    },
    tags=["consent"],
)
@extend_schema(
    methods=["DELETE"],
    summary="Withdraw voice consent",
    description="Withdraws consent and deletes the caller's voiceprint in the same transaction.",
    responses={204: None, 401: NOT_AUTHENTICATED, 403: CSRF_FAILED},
    tags=["consent"],
)
@api_view(["GET", "POST", "DELETE"])
def voice_consent(request: Request) -> Response:
    """The caller's consent to keeping a voiceprint (versioned text, explicit yes)."""
    if request.method == "POST":
        data = ConsentGiveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        consent.voice_consent_give(user=request.user, version=data.validated_data["version"])
        return Response(_consent_body(request.user), status=status.HTTP_201_CREATED)
    if request.method == "DELETE":
        consent.voice_consent_withdraw(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(_consent_body(request.user))


class ExportSerializer(serializers.Serializer):
    """Documentation of GET me/export/ (built by ``accounts.export.personal_data_export``)."""

    format = serializers.CharField()
    exported_at = serializers.DateTimeField()
    account = serializers.DictField()
    consents = serializers.ListField(child=serializers.DictField())
    enrollment_utterances = serializers.ListField(
        child=serializers.DictField(),
        help_text="Metadata and the stored features (mel_bands, rms).",
    )
    speaker_model = serializers.DictField(allow_null=True, help_text="Metadata only.")
    challenges = serializers.ListField(child=serializers.DictField())
    verification_attempts = serializers.ListField(child=serializers.DictField())
    lockout = serializers.DictField(allow_null=True)
    replay_fingerprints = serializers.ListField(child=serializers.DictField())
    audit_events = serializers.ListField(child=serializers.DictField())
    attempt_labels = serializers.ListField(child=serializers.DictField())


@extend_schema(
    summary="Export my data",
    description=(
        "Every personal record of the caller as one JSON document (GDPR access and portability): "
        "account, consents, enrollment utterances with their features, speaker model metadata, "
        "challenges, verification attempts, lockout state, replay fingerprints, audit events. "
        "Secrets (password hash, token keys, session keys, open challenge ids) and scores are "
        "left out."
    ),
    responses={200: ExportSerializer, 401: NOT_AUTHENTICATED},
)
@api_view(["GET"])
def me_export(request: Request) -> Response:
    body = export.personal_data_export(user=request.user)
    filename = f"speakerauth-{request.user.username}.json"
    return Response(body, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
