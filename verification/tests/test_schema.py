"""The OpenAPI 3 schema (drf-spectacular) validates and documents every body, bound and error.

Validated twice, independently: by openapi-spec-validator (the OpenAPI Initiative's JSON schema
of the 3.0 spec) and by drf-spectacular's own ``--validate --fail-on-warn`` (which also fails on
anything the generator had to guess).
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse
from openapi_spec_validator import validate

from verification import features
from verification.serializers import MAX_PROMPT_DIGITS, MAX_UTTERANCES_PER_REQUEST

FEATURE_OPERATIONS = [
    (path, method)
    for path in ("/api/v1/voiceprint/train/", "/api/v1/voiceprint/test/", "/train", "/test")
    for method in ("post", "put")
]
SCORE_OPERATIONS = [
    (path, method) for path in ("/api/v1/voiceprint/score/", "/score") for method in ("post", "put")
]
BODY_ERRORS = {"400", "401", "403", "413", "415", "429"}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get(reverse("schema"), {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_spectacular_validates_the_schema_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert (tmp_path / "s.yml").read_text().startswith("openapi: 3")


def test_every_endpoint_is_documented(schema):
    expected = {
        "/api/v1/feature-contract/",
        "/api/v1/voiceprint/",
        "/api/v1/voiceprint/train/",
        "/api/v1/voiceprint/test/",
        "/api/v1/voiceprint/score/",
        "/api/v1/challenges/",
        "/api/v1/attempts/",
        "/api/v1/attempts/{id}/",
        "/api/v1/auth/token/",
        "/api/v1/me/",
        "/train",
        "/test",
        "/score",
    }
    assert expected <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/voiceprint/"]) == {"get", "delete"}
    assert set(schema["paths"]["/train"]) == {"put", "post"}


@pytest.mark.parametrize(("path", "method"), FEATURE_OPERATIONS + SCORE_OPERATIONS)
def test_feature_operations_declare_a_required_json_body(schema, path, method):
    body = schema["paths"][path][method]["requestBody"]
    assert body.get("required") is True
    assert "application/json" in body["content"]


@pytest.mark.parametrize(("path", "method"), FEATURE_OPERATIONS + SCORE_OPERATIONS)
def test_feature_operations_declare_their_error_responses(schema, path, method):
    responses = schema["paths"][path][method]["responses"]
    assert set(responses) >= BODY_ERRORS
    for code in BODY_ERRORS - {"403", "429"}:  # 403/429 of score carry a decision instead
        content = responses[code]["content"]["application/json"]["schema"]
        assert content == {"$ref": "#/components/schemas/Error"}, (code, content)
        assert responses[code]["description"]


@pytest.mark.parametrize("path", ["/api/v1/voiceprint/train/", "/train"])
def test_train_documents_missing_background_model(schema, path):
    assert "503" in schema["paths"][path]["put"]["responses"]


@pytest.mark.parametrize("path", ["/api/v1/voiceprint/test/", "/test"])
def test_test_documents_not_enrolled(schema, path):
    assert "409" in schema["paths"][path]["post"]["responses"]


def test_legacy_verbs_accept_curls_form_content_type(schema):
    for path, method in FEATURE_OPERATIONS + SCORE_OPERATIONS:
        if not path.startswith("/api/"):
            content = schema["paths"][path][method]["requestBody"]["content"]
            assert "application/x-www-form-urlencoded" in content


def test_train_body_is_one_utterance_or_a_bounded_list(schema):
    body = schema["paths"]["/api/v1/voiceprint/train/"]["post"]["requestBody"]
    one_of = _resolve(schema, body["content"]["application/json"]["schema"])["oneOf"]
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in one_of}
    assert names == {"UtterancePayloadRequest", "UtteranceListRequestRequest"}
    listed = _component(schema, "UtteranceListRequestRequest")["properties"]["utterances"]
    assert (listed["minItems"], listed["maxItems"]) == (1, MAX_UTTERANCES_PER_REQUEST)


def test_utterance_documents_the_contract_and_every_bound(schema):
    utterance = _component(schema, "UtterancePayloadRequest")
    props = utterance["properties"]
    assert set(utterance["required"]) >= {
        "feature_version",
        "sample_rate",
        "frame_length",
        "hop_length",
        "window",
        "digit",
    }
    for key in ("feature_version", "sample_rate", "frame_length", "hop_length", "window"):
        assert _resolve(schema, props[key]["allOf"][0])["enum"] == [features.CONTRACT[key]]
    assert (props["digit"]["minimum"], props["digit"]["maximum"]) == (0, 9)
    mel = props["mel_bands"]
    assert (mel["minItems"], mel["maxItems"]) == (features.MIN_FRAMES, features.MAX_FRAMES)
    row = mel["items"]
    assert (row["minItems"], row["maxItems"]) == (features.N_MEL_BANDS, features.N_MEL_BANDS)
    assert (row["items"]["minimum"], row["items"]["maximum"]) == (0, features.MEL_BAND_MAX)
    rms = props["rms"]
    assert (rms["minItems"], rms["maxItems"]) == (features.MIN_FRAMES, features.MAX_FRAMES)
    assert (rms["items"]["minimum"], rms["items"]["maximum"]) == (0, features.RMS_MAX)
    assert _resolve(schema, props["encoding"]["allOf"][0])["enum"] == ["float16", "float32"]


def test_score_body_documents_challenge_and_answer_bounds(schema):
    body = schema["paths"]["/api/v1/voiceprint/score/"]["post"]["requestBody"]
    score = _resolve(schema, body["content"]["application/json"]["schema"])
    assert set(score["required"]) == {"challenge", "utterances"}
    assert score["properties"]["challenge"]["maxLength"] == 64
    answers = score["properties"]["utterances"]
    assert (answers["minItems"], answers["maxItems"]) == (1, MAX_PROMPT_DIGITS)
    utterance = _resolve(schema, answers["items"])
    assert "digit" not in utterance.get("required", [])


def test_score_response_documents_decision_and_optional_score(schema):
    ok = schema["paths"]["/api/v1/voiceprint/score/"]["post"]["responses"]["200"]
    response = _resolve(schema, ok["content"]["application/json"]["schema"])
    assert set(response["required"]) == {"decision", "reason", "attempt"}
    assert {"score", "threshold", "retry_after"} <= set(response["properties"])
    decisions = _resolve(schema, response["properties"]["decision"])
    assert decisions["enum"] == ["accept", "reject"]


def test_every_authenticated_operation_documents_401(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if {} not in operation.get("security", [])  # {} = no authentication needed
        and path != "/api/v1/auth/token/"
        and "401" not in operation["responses"]
    ]
    assert missing == []


def test_every_operation_with_a_body_documents_400(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if "requestBody" in operation and "400" not in operation["responses"]
    ]
    assert missing == []


def test_feature_contract_is_documented_as_public(schema):
    operation = schema["paths"]["/api/v1/feature-contract/"]["get"]
    assert operation["security"] == [{}]


def test_legacy_verbs_document_token_and_basic_auth_only(schema):
    for path in ("/train", "/test", "/score"):
        security = schema["paths"][path]["put"]["security"]
        assert security == [{"tokenAuth": []}, {"basicAuth": []}]


def test_swagger_ui_is_served(client, db):
    response = client.get(reverse("swagger-ui"))
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
