"""Hostile input on every endpoint that takes features: 400/413/415 with a clear message, nothing
stored, never a 500.

The browser computes the features, so a malicious client can post anything. Each case below is
sent raw (bytes, not re-encoded by the test client) to the v1 endpoints and to the seed's root
PUT verbs, authenticated with an API token as a script would be.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from django.urls import reverse

from verification import features
from verification.models import (
    Challenge,
    EnrollmentUtterance,
    Reason,
    ReplayFingerprint,
    SpeakerModel,
    VerificationAttempt,
)
from verification.tests.conftest import consent, token_client


def _valid_utterance() -> dict:
    """A payload that passes validation: Meyda features of a seeded noise burst."""
    rng = np.random.default_rng(3)
    signal = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    mel, rms = features.meyda_features(signal)
    return features.utterance_payload(features.Utterance(mel, rms, digit=3))


VALID = _valid_utterance()
N_FRAMES = len(VALID["mel_bands"])


def _with(**changes) -> dict:
    body = json.loads(json.dumps(VALID))
    body.update(changes)
    return body


def _mel_cell(value) -> dict:
    body = _with()
    body["mel_bands"][2][5] = value
    return body


def _rms_cell(value) -> dict:
    body = _with()
    body["rms"][4] = value
    return body


def _text(obj) -> bytes:
    return json.dumps(obj).encode()


def _raw_cell(token: str) -> bytes:
    """The valid body with one mel value replaced by a raw JSON token (NaN, 1e999, 1_0...)."""
    marker = 12345.678
    return _text(_mel_cell(marker)).replace(repr(marker).encode(), token.encode())


def _frames(n: int, value: float = 1.0) -> dict:
    return _with(mel_bands=[[value] * 40] * n, rms=[0.5] * n)


def _deep(depth: int) -> bytes:
    return _text(_with(mel_bands="@")).replace(b'"@"', b"[" * depth + b"]" * depth)


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(arr.astype("<f4").tobytes()).decode()


def _b64_with_nan() -> dict:
    mel = np.array(VALID["mel_bands"], dtype=np.float32)
    mel[1, 1] = np.nan
    body = _with(encoding="float32", mel_bands_b64=_b64(mel), rms_b64=_b64(np.array(VALID["rms"])))
    del body["mel_bands"], body["rms"]
    return body


# (id, raw body, content type, expected status, a word the error names: field or detail)
JSON = "application/json"
CASES = [
    ("string-NaN", _text(_mel_cell("NaN")), JSON, 400, "mel_bands[2][5]"),
    ("literal-NaN", _raw_cell("NaN"), JSON, 400, "mel_bands"),
    ("string-Infinity", _text(_mel_cell("Infinity")), JSON, 400, "mel_bands[2][5]"),
    ("literal-Infinity", _raw_cell("Infinity"), JSON, 400, "mel_bands"),
    ("1e999", _raw_cell("1e999"), JSON, 400, "mel_bands"),
    ("-1e999", _raw_cell("-1e999"), JSON, 400, "mel_bands"),
    ("true", _text(_mel_cell(True)), JSON, 400, "mel_bands[2][5]"),
    ("string-1.5", _text(_mel_cell("1.5")), JSON, 400, "mel_bands[2][5]"),
    ("string-1_0", _text(_mel_cell("1_0")), JSON, 400, "mel_bands[2][5]"),
    ("literal-1_0", _raw_cell("1_0"), JSON, 400, "JSON"),
    ("null", _text(_mel_cell(None)), JSON, 400, "mel_bands[2][5]"),
    ("object", _text(_mel_cell({})), JSON, 400, "mel_bands[2][5]"),
    ("negative", _text(_mel_cell(-0.5)), JSON, 400, "mel_bands[2][5]"),
    ("huge-finite", _text(_mel_cell(1e300)), JSON, 400, "mel_bands[2][5]"),
    ("rms-NaN", _raw_cell("1").replace(b'"rms": [', b'"rms": [NaN, '), JSON, 400, "rms"),
    ("rms-true", _text(_rms_cell(True)), JSON, 400, "rms[4]"),
    ("rms-null", _text(_rms_cell(None)), JSON, 400, "rms[4]"),
    ("rms-short", _text(_with(rms=VALID["rms"][:-1])), JSON, 400, "rms"),
    (
        "ragged",
        _text(_with(mel_bands=[*VALID["mel_bands"][:-1], [1.0] * 39])),
        JSON,
        400,
        "mel_bands",
    ),
    (
        "39-columns",
        _text(_with(mel_bands=[r[:39] for r in VALID["mel_bands"]])),
        JSON,
        400,
        "mel_bands[0]",
    ),
    (
        "41-columns",
        _text(_with(mel_bands=[[*r, 1.0] for r in VALID["mel_bands"]])),
        JSON,
        400,
        "mel_bands[0]",
    ),
    ("row-not-list", _text(_with(mel_bands=[1.0] * N_FRAMES)), JSON, 400, "mel_bands[0]"),
    ("0-frames", _text(_frames(0)), JSON, 400, "mel_bands"),
    ("1-frame", _text(_frames(1)), JSON, 400, "mel_bands"),
    ("100000-frames", _text(_frames(100_000)), JSON, 413, "large"),
    (
        "100000-frames-b64",
        _text(_with(encoding="float16", mel_bands_b64="AAAA" * 2_000_000, rms_b64="AAAA")),
        JSON,
        413,
        "large",
    ),
    (
        "1501-frames-b64",
        _text(
            {
                **{k: v for k, v in VALID.items() if k not in ("mel_bands", "rms")},
                "encoding": "float16",
                "mel_bands_b64": base64.b64encode(bytes(1501 * 80)).decode(),
                "rms_b64": base64.b64encode(bytes(1501 * 2)).decode(),
            }
        ),
        JSON,
        400,
        "mel_bands_b64",
    ),
    ("constant", _text(_frames(N_FRAMES, 2.0)), JSON, 400, "mel_bands"),
    ("all-zero", _text(_frames(N_FRAMES, 0.0)), JSON, 400, "mel_bands"),
    ("energy-exceeds-rms", _text(_with(rms=[1e-4] * N_FRAMES)), JSON, 400, "mel_bands"),
    ("b64-NaN", _text(_b64_with_nan()), JSON, 400, "mel_bands_b64"),
    ("b64-garbage", _text({**_b64_with_nan(), "mel_bands_b64": "%%%"}), JSON, 400, "mel_bands_b64"),
    ("nested-1000", _deep(1000), JSON, 400, "nested"),
    ("nested-17", _deep(17), JSON, 400, "nested"),
    ("3MB-body", _text(_with(padding="x" * 3_000_000)), JSON, 413, "large"),
    ("duplicate-keys", _text(VALID)[:-1] + b', "digit": 7}', JSON, 400, "Duplicate"),
    ("unknown-field", _text(_with(extra=1)), JSON, 400, "extra"),
    # Found by Schemathesis: an unhashable encoding once raised TypeError (a 500).
    ("encoding-object", _text({**_b64_with_nan(), "encoding": {}}), JSON, 400, "encoding"),
    ("encoding-list", _text({**_b64_with_nan(), "encoding": []}), JSON, 400, "encoding"),
    ("encoding-other", _text({**_b64_with_nan(), "encoding": "float64"}), JSON, 400, "encoding"),
    ("wrong-contract", _text(_with(sample_rate=44100)), JSON, 400, "sample_rate"),
    ("digit-string", _text(_with(digit="3")), JSON, 400, "digit"),
    ("digit-bool", _text(_with(digit=True)), JSON, 400, "digit"),
    ("digit-float", _text(_with(digit=3.0)), JSON, 400, "digit"),
    ("digit-10", _text(_with(digit=10)), JSON, 400, "digit"),
    ("body-array", b"[]", JSON, 400, "body"),
    ("body-null", b"null", JSON, 400, "body"),
    ("body-number", b"12", JSON, 400, "body"),
    ("empty-body", b"", JSON, 400, "required"),
    ("two-documents", _text(VALID) + b" {}", JSON, 400, "JSON"),
    ("not-utf8", b'{"digit": "\xff\xfe"}', JSON, 400, "utf-8"),
    ("truncated", _text(VALID)[:-20], JSON, 400, "JSON"),
    ("text-plain", _text(VALID), "text/plain", 415, "text/plain"),
    ("multipart", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415, "multipart"),
]

ENDPOINTS = [
    ("post", reverse("voiceprint-train"), "train"),
    ("put", "/train", "train"),
    ("post", reverse("voiceprint-test"), "test"),
    ("put", "/test", "test"),
    ("post", reverse("voiceprint-score"), "score"),
    ("put", "/score", "score"),
]


def _wrap(raw: bytes, kind: str, nonce: str) -> bytes:
    """Put the utterance text where the endpoint expects one (raw, so tokens survive)."""
    if kind == "score":
        return b'{"challenge": "' + nonce.encode() + b'", "utterances": [' + raw + b"]}"
    if kind == "test":
        return b'{"utterances": [' + raw + b"]}"
    return raw


def _counts(user) -> dict:
    return {
        "utterances": EnrollmentUtterance.objects.filter(user=user).count(),
        "models": SpeakerModel.objects.filter(user=user).count(),
        "open_challenges": Challenge.objects.filter(user=user, used_at__isnull=True).count(),
        "fingerprints": ReplayFingerprint.objects.filter(user=user).count(),
        "attempts": VerificationAttempt.objects.filter(user=user)
        .exclude(reason=Reason.INVALID_INPUT)
        .count(),
    }


def _body(case: str, raw: bytes, kind: str, nonce: str) -> bytes:
    whole = ("body-", "empty-", "two-", "not-utf8", "truncated")
    return raw if case.startswith(whole) else _wrap(raw, kind, nonce)


@pytest.fixture
def target(request, alice):
    """alice with consent, authenticated by API token like a script."""
    consent(alice)
    return token_client(alice), *request.param


@pytest.mark.parametrize(
    "target", ENDPOINTS, indirect=True, ids=[f"{m}{p}" for m, p, _ in ENDPOINTS]
)
@pytest.mark.parametrize(
    ("case", "raw", "content_type", "expected", "named"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_body_is_refused_with_a_clear_message(
    target, alice, case, raw, content_type, expected, named
):
    client, method, path, kind = target
    before = _counts(alice)
    response = client.generic(
        method.upper(), path, _body(case, raw, kind, "c" * 43), content_type=content_type
    )
    assert response.status_code == expected, response.content[:300]
    error = response.json()
    assert error["detail"]
    assert error["code"]
    assert named.lower() in (error.get("field", "") + " " + error["detail"]).lower(), error
    assert _counts(alice) == before


@pytest.mark.parametrize(("method", "path", "kind"), ENDPOINTS)
def test_no_hostile_body_stores_or_consumes_anything_for_an_enrolled_user(
    enrolled_alice, corpus, method, path, kind
):
    """Every case against an enrolled user holding an open challenge: no utterance, model,
    fingerprint or decision is written and the challenge stays open; a score endpoint audits
    each refused body as one ``invalid_input`` reject and nothing else."""
    from verification import services

    client = token_client(enrolled_alice)
    nonce = services.challenge_create(user=enrolled_alice).nonce
    model_version = SpeakerModel.objects.get(user=enrolled_alice).version
    before = _counts(enrolled_alice)
    invalid_before = VerificationAttempt.objects.filter(reason=Reason.INVALID_INPUT).count()
    for case, raw, content_type, expected, _ in CASES:
        response = client.generic(
            method.upper(), path, _body(case, raw, kind, nonce), content_type=content_type
        )
        assert response.status_code == expected, (case, response.content[:300])
    assert _counts(enrolled_alice) == before
    assert SpeakerModel.objects.get(user=enrolled_alice).version == model_version
    assert Challenge.objects.get(nonce=nonce).used_at is None
    invalid = VerificationAttempt.objects.filter(reason=Reason.INVALID_INPUT).count()
    assert invalid - invalid_before == (len(CASES) if kind == "score" else 0)
