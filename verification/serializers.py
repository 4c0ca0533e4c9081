"""Request parsing and response shapes of the verification API.

Feature arrays are validated by ``features.parse_utterance`` (numpy, once per array), never by a
DRF field per float. The request serializers below that describe feature payloads exist for the
OpenAPI schema: they document every field and bound; ``parse_*`` functions do the validation.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from verification import features
from verification.exceptions import InputError
from verification.models import Challenge, Decision, Reason, VerificationAttempt

# Bounds a request body by count as well as bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).
MAX_UTTERANCES_PER_REQUEST = 50
MAX_CHALLENGE_ID_LENGTH = 64
# A prompt is at most 16 digits long (Challenge.digits); anything longer is not an answer.
MAX_PROMPT_DIGITS = 16

# --------------------------------------------------------------------------------------------------
# Parsing (the real validation)


def _parse_list(value: Any, *, require_digit: bool, max_items: int) -> list[features.Utterance]:
    if type(value) is not list or not value:
        raise InputError("expected a non-empty list of utterance objects", field="utterances")
    if len(value) > max_items:
        raise InputError(
            f"expected at most {max_items} utterances, got {len(value)}", field="utterances"
        )
    return [
        features.parse_utterance(item, field=f"utterances[{i}]", require_digit=require_digit)
        for i, item in enumerate(value)
    ]


def _require_object(data: Any) -> dict:
    if type(data) is not dict:
        raise InputError("expected a JSON object as the request body", field="body")
    return data


def parse_utterances_body(data: Any) -> list[features.Utterance]:
    """``{"utterances": [...]}`` or a single utterance object -> utterances with digits."""
    data = _require_object(data)
    if "utterances" in data:
        extra = sorted(set(data) - {"utterances"})
        if extra:
            raise InputError("unexpected field next to 'utterances'", field=extra[0])
        return _parse_list(
            data["utterances"], require_digit=True, max_items=MAX_UTTERANCES_PER_REQUEST
        )
    return [features.parse_utterance(data, field="utterance", require_digit=True)]


def parse_score_body(data: Any) -> tuple[str, list[features.Utterance]]:
    """``{"challenge": id, "utterances": [...]}`` -> (challenge id, utterances)."""
    data = _require_object(data)
    extra = sorted(set(data) - {"challenge", "utterances"})
    if extra:
        raise InputError("unexpected field; expected 'challenge' and 'utterances'", field=extra[0])
    challenge = data.get("challenge")
    if type(challenge) is not str or not 0 < len(challenge) <= MAX_CHALLENGE_ID_LENGTH:
        raise InputError(
            "is required; expected the challenge id string returned by POST /api/v1/challenges/",
            field="challenge",
        )
    if "utterances" not in data:
        raise InputError(
            "is required; expected one utterance per prompted digit", field="utterances"
        )
    return challenge, _parse_list(
        data["utterances"], require_digit=False, max_items=MAX_PROMPT_DIGITS
    )


# --------------------------------------------------------------------------------------------------
# Documentation of request bodies


def _contract_choice(key: str, help_text: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=[features.CONTRACT[key]], help_text=help_text)


class UtterancePayloadSerializer(serializers.Serializer):
    """One utterance's browser features (Meyda 5.6.3 `melBands` and `rms` per frame)."""

    feature_version = _contract_choice("feature_version", "Feature contract version.")
    sample_rate = _contract_choice("sample_rate", "Sample rate of the analysed signal (Hz).")
    frame_length = _contract_choice("frame_length", "Samples per frame.")
    hop_length = _contract_choice("hop_length", "Samples between frame starts.")
    window = _contract_choice("window", "Window function set in Meyda.")
    digit = serializers.IntegerField(
        min_value=0, max_value=9, help_text="The prompted digit (required for enrollment)."
    )
    mel_bands = serializers.ListField(
        child=serializers.ListField(
            child=serializers.FloatField(min_value=0.0, max_value=features.MEL_BAND_MAX),
            min_length=features.N_MEL_BANDS,
            max_length=features.N_MEL_BANDS,
        ),
        min_length=features.MIN_FRAMES,
        max_length=features.MAX_FRAMES,
        required=False,
        help_text=(
            f"One row of {features.N_MEL_BANDS} Meyda melBands (ln(E + 1)) per frame, "
            f"{features.MIN_FRAMES}..{features.MAX_FRAMES} frames; finite numbers only. "
            "Send exactly one of mel_bands and mel_bands_b64."
        ),
    )
    rms = serializers.ListField(
        child=serializers.FloatField(min_value=0.0, max_value=features.RMS_MAX),
        min_length=features.MIN_FRAMES,
        max_length=features.MAX_FRAMES,
        required=False,
        help_text="Meyda rms of each frame (same count as mel_bands). Or rms_b64.",
    )
    encoding = serializers.ChoiceField(
        choices=["float16", "float32"],
        required=False,
        help_text="Encoding of mel_bands_b64 / rms_b64 (little-endian).",
    )
    mel_bands_b64 = serializers.CharField(
        required=False, help_text="Base64 of the mel_bands matrix, rows of 40 values concatenated."
    )
    rms_b64 = serializers.CharField(required=False, help_text="Base64 of the rms vector.")


class ScoreUtterancePayloadSerializer(UtterancePayloadSerializer):
    """An utterance answering a challenge; `digit`, if sent, must be the prompted digit."""

    digit = serializers.IntegerField(
        min_value=0,
        max_value=9,
        required=False,
        help_text="Optional; never trusted (the engine checks what was said).",
    )


# ListField rather than many=True: drf-spectacular documents a ListField's bounds (minItems,
# maxItems) but not a ListSerializer's.
class UtteranceListRequestSerializer(serializers.Serializer):
    utterances = serializers.ListField(
        child=UtterancePayloadSerializer(), min_length=1, max_length=MAX_UTTERANCES_PER_REQUEST
    )


UtterancesRequest = PolymorphicProxySerializer(
    component_name="Utterances",
    serializers=[UtterancePayloadSerializer, UtteranceListRequestSerializer],
    resource_type_field_name=None,
)


class ScoreRequestSerializer(serializers.Serializer):
    challenge = serializers.CharField(
        max_length=MAX_CHALLENGE_ID_LENGTH, help_text="The `id` returned by POST challenges/."
    )
    utterances = serializers.ListField(
        child=ScoreUtterancePayloadSerializer(),
        min_length=1,
        max_length=MAX_PROMPT_DIGITS,
        help_text="One utterance per prompted digit, in the prompted order.",
    )


# --------------------------------------------------------------------------------------------------
# Responses


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What was wrong and what was expected.")
    code = serializers.CharField(help_text="Machine-readable error code.")
    field = serializers.CharField(
        required=False, help_text="The offending input, e.g. `utterances[2].mel_bands[17][3]`."
    )


class FeatureContractSerializer(serializers.Serializer):
    feature_version = serializers.CharField()
    sample_rate = serializers.IntegerField()
    frame_length = serializers.IntegerField()
    hop_length = serializers.IntegerField()
    window = serializers.CharField()
    mel_bands = serializers.IntegerField(help_text="Values per frame in `mel_bands`.")
    min_frames = serializers.IntegerField()
    max_frames = serializers.IntegerField()
    mel_band_max = serializers.FloatField()
    rms_max = serializers.FloatField()
    encodings = serializers.ListField(child=serializers.CharField())
    challenge_digits = serializers.IntegerField()


def feature_contract() -> dict:
    return {
        **features.CONTRACT,
        "min_frames": features.MIN_FRAMES,
        "max_frames": features.MAX_FRAMES,
        "mel_band_max": features.MEL_BAND_MAX,
        "rms_max": features.RMS_MAX,
        "encodings": ["float16", "float32"],
        "challenge_digits": settings.VERIFICATION_CHALLENGE_DIGITS,
    }


class SpeakerModelInfoSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="Counts (re)trainings of this voiceprint.")
    ubm_version = serializers.CharField(source="background_model.version")
    utterance_count = serializers.IntegerField()
    trained_at = serializers.DateTimeField()


class VoiceprintStatusSerializer(serializers.Serializer):
    utterances_per_digit = serializers.DictField(
        child=serializers.IntegerField(),
        help_text='Enrollment utterances stored, per digit "0".."9".',
    )
    min_utterances_per_digit = serializers.IntegerField()
    digits_missing = serializers.ListField(
        child=serializers.IntegerField(), help_text="Digits that still need utterances."
    )
    test_utterances = serializers.IntegerField()
    enrollment_days = serializers.IntegerField(
        help_text="Days (UTC) on which enrollment utterances were stored. A voice changes between "
        "sittings: more utterances on another day make the voiceprint more reliable."
    )
    trained = serializers.BooleanField()
    model = SpeakerModelInfoSerializer(allow_null=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["utterances_per_digit"] = {str(d): n for d, n in instance.utterances_per_digit.items()}
        return data


class TrainResponseSerializer(VoiceprintStatusSerializer):
    added = serializers.IntegerField(help_text="Utterances stored by this request.")


class TestUtteranceResultSerializer(serializers.Serializer):
    """One stored test utterance. Serialises the utterance row, not the scored result, so that
    ``score`` and ``passed`` appear only where the view adds them (exposed callers)."""

    id = serializers.IntegerField()
    digit = serializers.IntegerField()
    frame_count = serializers.IntegerField()
    speech_fraction = serializers.FloatField()
    score = serializers.FloatField(
        required=False, help_text="Only for staff / VERIFICATION_EXPOSE_SCORE."
    )
    passed = serializers.BooleanField(
        required=False, help_text="score >= threshold. Only when scores are exposed."
    )


class TestResponseSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    utterances = TestUtteranceResultSerializer(many=True)
    score = serializers.FloatField(
        required=False,
        help_text="All utterances together. Only for staff / VERIFICATION_EXPOSE_SCORE.",
    )
    threshold = serializers.FloatField(required=False)
    passed = serializers.BooleanField(required=False)


class ChallengeSerializer(serializers.ModelSerializer):
    id = serializers.CharField(
        source="nonce", help_text="Single-use id: send it back with the answer."
    )
    digits = serializers.ListField(
        source="digit_list",
        child=serializers.IntegerField(min_value=0, max_value=9),
        help_text="Say these digits, one utterance each, in this order.",
    )

    class Meta:
        model = Challenge
        fields = ("id", "digits", "expires_at")
        read_only_fields = fields


class ScoreResponseSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.ChoiceField(choices=Reason.choices)
    attempt = serializers.IntegerField(help_text="Id of the audit row (GET attempts/{id}/).")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds, when locked out.")
    score = serializers.FloatField(
        required=False, allow_null=True, help_text="Staff / evaluation only."
    )
    threshold = serializers.FloatField(
        required=False, allow_null=True, help_text="Staff / evaluation only."
    )


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = VerificationAttempt
        fields = (
            "id",
            "created_at",
            "decision",
            "reason",
            "frame_count",
            "speaker_model_version",
            "ubm_version",
        )
        read_only_fields = fields


class ScoredAttemptSerializer(AttemptSerializer):
    """With VERIFICATION_EXPOSE_SCORE (evaluation deployments)."""

    class Meta(AttemptSerializer.Meta):
        fields = (*AttemptSerializer.Meta.fields, "score", "threshold")
        read_only_fields = fields


class StaffAttemptSerializer(ScoredAttemptSerializer):
    user = serializers.CharField(source="user.username")

    class Meta(ScoredAttemptSerializer.Meta):
        fields = (
            *ScoredAttemptSerializer.Meta.fields,
            "user",
            "client_ip",
            "user_agent",
            "latency_ms",
        )
        read_only_fields = fields


class AttemptDocSerializer(serializers.Serializer):
    """Documentation of an attempt as any caller may see it; optional fields are staff-only
    (score and threshold also with VERIFICATION_EXPOSE_SCORE)."""

    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.ChoiceField(choices=Reason.choices)
    frame_count = serializers.IntegerField()
    speaker_model_version = serializers.IntegerField(allow_null=True)
    ubm_version = serializers.CharField()
    score = serializers.FloatField(required=False, allow_null=True)
    threshold = serializers.FloatField(required=False, allow_null=True)
    user = serializers.CharField(required=False)
    client_ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(required=False)
    latency_ms = serializers.IntegerField(required=False)
