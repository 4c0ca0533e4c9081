"""Real-browser fixtures: Debian's Chromium through Playwright, a fake microphone that plays real
recordings from the development corpus, and the live Django server.

Locally these tests skip when chromium or the corpus is missing; with ``CI`` set they fail instead
(as ``verification/tests/test_parity.py`` does for node).
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from django.conf import settings

from tests.e2e import INSECURE_HOST
from verification import features

# Playwright's sync API runs an asyncio loop in the test's thread; Django then refuses ORM calls
# from it ("async context") although they are plain synchronous calls. Test process only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("SPEAKERAUTH_CHROMIUM", "/usr/bin/chromium"))
FAKE_MICROPHONE = Path(__file__).with_name("fake_microphone.js")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    # A name that is not localhost: pages served over plain HTTP there are not a secure context.
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
]


@pytest.fixture(scope="session", autouse=True)
def _no_persistent_connections():
    """The live server's request threads close their connections after each request, so the
    test database can be dropped at the end (DATABASE_CONN_MAX_AGE would keep them open)."""
    from django.db import connections

    settings_dict = connections.settings["default"]
    previous = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = 0
    yield
    settings_dict["CONN_MAX_AGE"] = previous


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    folder = Path(settings.SPEAKERAUTH_CORPUS_DIR)
    if not (folder / "fsdd" / "0_george_0.wav").is_file():
        _missing(f"corpus folder {folder} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    return folder


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, so a later browser test elsewhere (the admin dashboard's) could not start its
# own, and tests after this package would run inside that loop.
@pytest.fixture(scope="package")
def chromium():
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    if not (Path(settings.BASE_DIR) / "node_modules" / "meyda" / "dist" / "web").is_dir():
        _missing("node_modules/meyda is missing (run npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class FakeMicrophone:
    """Answers the init script's /__e2e__/audio?digit=D requests with corpus WAV files.

    ``speak(speaker)`` picks ``fsdd/{digit}_{speaker}_{index}.wav`` with a per-digit index that
    advances from ``first_index``; ``queue`` holds explicit files to play first, whatever the digit.
    """

    def __init__(self, corpus: Path) -> None:
        self.corpus = corpus
        self.speaker = "george"
        self.first_index = 0
        self.next_index: dict[int, int] = defaultdict(int)
        self.queue: list[Path] = []
        self.served: list[tuple[int, str]] = []

    def speak(self, speaker: str, first_index: int = 0) -> None:
        self.speaker = speaker
        self.first_index = first_index
        self.next_index.clear()

    def file_for(self, digit: int) -> Path:
        if self.queue:
            return self.queue.pop(0)
        index = self.first_index + self.next_index[digit]
        self.next_index[digit] += 1
        return self.corpus / "fsdd" / f"{digit}_{self.speaker}_{index}.wav"

    def handle(self, route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        digit = int(query["digit"][0])
        path = self.file_for(digit)
        self.served.append((digit, path.name))
        route.fulfill(
            status=200,
            body=wav_16k_float32(path),
            headers={"Content-Type": "audio/wav", "X-Recording": path.name},
        )


def wav_16k_float32(path: Path) -> bytes:
    """The recording as the server reads it (read_wav + resample_to_16k), as a float32 WAV.

    A real microphone path resamples in the browser's capture pipeline with a proper filter;
    played from an 8 kHz buffer, Chromium would interpolate linearly and add images above 4 kHz
    that no microphone produces. Serving the server's own 16 kHz signal keeps the two sides on
    the same samples (the parity test relies on it).
    """
    signal, rate = features.read_wav(path)
    samples = np.ascontiguousarray(features.resample_to_16k(signal, rate), dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 1, features.SAMPLE_RATE, 4 * features.SAMPLE_RATE, 4, 32)
    data = samples.tobytes()
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data))
    return b"RIFF" + struct.pack("<I", 4 + len(chunks) + len(data)) + b"WAVE" + chunks + data


@pytest.fixture
def microphone(corpus_dir) -> FakeMicrophone:
    return FakeMicrophone(corpus_dir)


@pytest.fixture
def browser_page(chromium, live_server, microphone):
    """A fresh browser context on the live server with the fake microphone; fails the test on
    any uncaught page error or console error."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 860, "height": 640})
    context.add_init_script(path=str(FAKE_MICROPHONE))
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not _expected_console_error(msg.text)
            else None
        ),
    )
    page.route(re.compile(r".*/__e2e__/audio\?.*"), microphone.handle)
    page.problems = problems
    in_flight: set = set()
    context.on("request", lambda request: in_flight.add(request))
    context.on("requestfinished", lambda request: in_flight.discard(request))
    context.on("requestfailed", lambda request: in_flight.discard(request))
    yield page
    # A test may end as soon as a request is sent (expect_request): let the live server answer
    # it before the database is flushed, or the flush's TRUNCATE and that request's transaction
    # can deadlock (seen once in CI, at the teardown of a test ending on a train POST).
    deadline = time.monotonic() + 15
    while in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    context.close()
    assert not problems, problems


def _expected_console_error(text: str) -> bool:
    # fetch() failures the page handles and shows itself (e.g. an expected 403/429 answer), and
    # the browser ignoring COOP on the deliberately insecure test host.
    return "Failed to load resource" in text or "Cross-Origin-Opener-Policy" in text
