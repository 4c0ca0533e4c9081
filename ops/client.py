"""A small HTTP client for the SpeakerAuth API and real utterance payloads from the corpus.

Standard library only (``http.client``): one connection per client, kept alive when the server
allows it (``http.client`` reopens it when the server closes it after a response, as
``gunicorn.conf.py`` does by default), so that a thread of the load generator costs little and
measures the server, not the client. Every request carries
``X-Forwarded-Proto: https`` as the Heroku router's do, so the production settings
(``SECURE_SSL_REDIRECT``, secure cookies, HTTPS CSRF checks) stay on.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from verification.features import Utterance, utterance_payload, wav_to_utterance

ROOT = Path(__file__).resolve().parent.parent
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Http:
    """One connection to ``base_url`` (kept alive if the server allows); token or session-cookie
    authentication."""

    base_url: str
    token: str | None = None
    timeout: float = 15.0
    forwarded_https: bool = True
    cookies: dict[str, str] = field(default_factory=dict)
    _conn: http.client.HTTPConnection | None = None
    _last_used: float = 0.0

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"https://{parts.netloc}" if self.forwarded_https else self.base_url

    def _connection(self) -> http.client.HTTPConnection:
        # gunicorn closes idle keep-alive connections (GUNICORN_KEEPALIVE s); never race it with
        # a POST.
        if self._conn is not None and time.monotonic() - self._last_used > 2.0:
            self.close()
        if self._conn is None:
            parts = urlsplit(self.base_url)
            self._conn = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        send_headers = {"Accept": "application/json"}
        if self.forwarded_https:
            send_headers["X-Forwarded-Proto"] = "https"
        if self.token:
            send_headers["Authorization"] = f"Token {self.token}"
        if self.cookies:
            send_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data: bytes | None = None
        if form is not None:
            data = urlencode(form).encode()
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(body, bytes):
            data = body
            send_headers["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers or {})
        conn = self._connection()
        started = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=send_headers)
            raw = conn.getresponse()
            payload = raw.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - started
        self._last_used = time.monotonic()
        header_map: dict[str, str] = {}
        for name, value in raw.getheaders():
            if name.lower() == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                self.cookies[cookie_name.strip()] = rest.split(";", 1)[0]
            header_map[name.lower()] = value
        if raw.will_close:
            self.close()
        return Response(raw.status, header_map, payload, elapsed)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", path, body=body, **kwargs)


# --------------------------------------------------------------------------------------------------
# Accounts (pages and token)

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def sign_up(http: Http, username: str, password: str) -> Response:
    """Create an account through the sign-up page, as a person would (CSRF and all)."""
    page = http.get("/accounts/signup/", headers={"Accept": "text/html"})
    if page.status != 200:
        raise AssertionError(f"GET /accounts/signup/ -> {page.status}")
    match = _CSRF_INPUT.search(page.text())
    if match is None:
        raise AssertionError("sign-up page has no CSRF token")
    form = {
        "csrfmiddlewaretoken": match.group(1),
        "username": username,
        "email": f"{username}@example.com",
        "password1": password,
        "password2": password,
    }
    return http.request(
        "POST",
        "/accounts/signup/",
        form=form,
        headers={"Accept": "text/html", "Referer": f"{http.origin}/accounts/signup/"},
    )


def obtain_token(http: Http, username: str, password: str) -> str:
    response = http.post("/api/v1/auth/token/", {"username": username, "password": password})
    if response.status != 200:
        raise AssertionError(f"POST /api/v1/auth/token/ -> {response.status}: {response.text()}")
    return str(response.json()["token"])


def give_consent(http: Http) -> str:
    """Agree to the current voice-consent text (required before enrollment); return its version."""
    status = http.get("/api/v1/consent/")
    if status.status != 200:
        raise AssertionError(f"GET /api/v1/consent/ -> {status.status}: {status.text()[:300]}")
    version = str(status.json()["version"])
    response = http.post("/api/v1/consent/", {"version": version, "agreed": True})
    if response.status != 201 or not response.json().get("given"):
        raise AssertionError(f"POST /api/v1/consent/ -> {response.status}: {response.text()[:300]}")
    return version


# --------------------------------------------------------------------------------------------------
# Real features from the corpus


def corpus_dir() -> Path:
    return Path(os.environ.get("SPEAKERAUTH_CORPUS_DIR", str(ROOT.parent / "shared" / "data")))


def fsdd_utterances(speaker: str, indices: range | list[int]) -> dict[int, list[Utterance]]:
    """{digit: [Utterance, ...]} for an FSDD speaker, features computed as the browser would."""
    folder = corpus_dir() / "fsdd"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"corpus folder {folder} is missing: set SPEAKERAUTH_CORPUS_DIR to the folder that "
            "holds fsdd/"
        )
    return {
        digit: [
            wav_to_utterance(folder / f"{digit}_{speaker}_{index}.wav", digit=digit)
            for index in indices
        ]
        for digit in range(10)
    }


def as_payloads(
    utterances: dict[int, list[Utterance]], *, encoding: str | None = "float16"
) -> dict[int, list[dict[str, Any]]]:
    """The request bodies of ``fsdd_utterances`` (``encoding=None``: JSON arrays)."""
    return {
        digit: [utterance_payload(utt, encoding=encoding) for utt in utts]
        for digit, utts in utterances.items()
    }


def fsdd_payloads(
    speaker: str, indices: range | list[int], *, encoding: str | None = "float16"
) -> dict[int, list[dict[str, Any]]]:
    """{digit: [utterance payload, ...]} for an FSDD speaker, computed as the browser would."""
    return as_payloads(fsdd_utterances(speaker, indices), encoding=encoding)


class FreshRecordings:
    """Hands out a user's recordings of a digit in turn, so that no attempt repeats one the server
    saw recently: the replay check rejects near-copies of a user's recent utterances, and a real
    user never says a digit the same way twice. ``pool`` is {digit: [payload, ...]}."""

    def __init__(self, pool: dict[int, list[dict[str, Any]]]) -> None:
        self.pool = pool
        self.next = dict.fromkeys(pool, 0)

    def take(self, digit: int) -> dict[str, Any]:
        recordings = self.pool[digit]
        payload = recordings[self.next[digit] % len(recordings)]
        self.next[digit] += 1
        return payload


def seconds_of_speech(payload: dict[str, Any]) -> float:
    """Duration covered by an utterance payload's frames (hop 160 at 16 kHz = 10 ms)."""
    if "rms" in payload:
        n_frames = len(payload["rms"])
    else:
        bytes_per_value = 2 if payload["encoding"] == "float16" else 4
        n_frames = len(base64.b64decode(payload["rms_b64"])) // bytes_per_value
    return n_frames * 160 / 16000
