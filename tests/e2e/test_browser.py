"""The pages in real Chromium: the page's own recorder and real Meyda on real recordings.

The microphone is ``fake_microphone.js`` (see conftest): a stream that plays the corpus WAV of the
digit the page shows. Everything after getUserMedia (the page's AudioContext at 16 kHz, AudioWorklet
capture, end-pointing, our 512/160 framing, ``Meyda.extract``, the float32 base64 payload, the API
calls) is the shipped code.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import wave
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from accounts.consent import CONSENT_VERSION, has_current_consent, voice_consent_give
from accounts.models import User
from accounts.tests.factories import UserFactory
from tests.e2e import INSECURE_HOST
from verification import features, selectors, services
from verification.models import Challenge, EnrollmentUtterance

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # UserFactory's
# The README's screenshots are refreshed on request (SPEAKERAUTH_SCREENSHOT_DIR=docs/screenshots);
# otherwise they go to a scratch folder, so a test run leaves the work tree clean.
SCREENSHOTS = Path(
    os.environ.get("SPEAKERAUTH_SCREENSHOT_DIR")
    or Path(tempfile.gettempdir()) / "speakerauth-screenshots"
)
TRAIN_URL = re.compile(r".*/api/v1/voiceprint/train/$")

# recorder.js ENDPOINTING, replayed on the server's features of the same audio.
ABSOLUTE_FLOOR = 0.002
FLOOR_FACTOR = 3
PEAK_FACTOR = 0.05
MAX_GAP_FRAMES = 20
PAD_FRAMES = 15


def find_speech(rms: np.ndarray) -> tuple[int, int]:
    """Python port of recorder.js findSpeech + padding: the frames [start, end) the page sends."""
    peak = float(rms.max())
    srt = np.sort(rms)
    floor = float(srt[int(np.floor(0.1 * (len(srt) - 1)))])
    threshold = max(ABSOLUTE_FLOOR, FLOOR_FACTOR * floor, PEAK_FACTOR * peak)
    runs: list[list[float]] = []
    for i, value in enumerate(rms):
        if value > threshold:
            if runs and i - runs[-1][1] <= MAX_GAP_FRAMES:
                runs[-1][1] = i + 1
                runs[-1][2] += value
            else:
                runs.append([i, i + 1, value])
    start, end, _ = max(runs, key=lambda r: r[2])
    return max(0, int(start) - PAD_FRAMES), min(len(rms), int(end) + PAD_FRAMES)


def write_wav(path: Path, signal: np.ndarray) -> None:
    """16-bit 16 kHz mono WAV; lossless for signals decoded from 16-bit files (k / 32768)."""
    ints = np.round(np.asarray(signal, dtype=np.float64) * 32768.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(features.SAMPLE_RATE)
        wav.writeframes(ints.tobytes())


def extract_features_command(path: Path) -> dict:
    out = io.StringIO()
    call_command("extract_features", str(path), stdout=out)
    return json.loads(out.getvalue())


def align(browser_rms: np.ndarray, signal: np.ndarray, lead: int) -> tuple[int, int, float]:
    """Where the page's frames sit in ``signal``: the sample shift k (0..159) and frame offset of
    ``zeros(lead + k) ++ signal`` whose rms matches the page's best. Returns (k, offset, error)."""
    n = len(browser_rms)
    best = (0, 0, np.inf)
    for k in range(features.HOP_LENGTH):
        padded = np.concatenate([np.zeros(lead + k, np.float32), signal])
        _, rms = features.meyda_features(padded)
        if len(rms) < n:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(rms, n)
        errors = np.abs(windows - browser_rms).max(axis=1)
        offset = int(np.argmin(errors))
        if errors[offset] < best[2]:
            best = (k, offset, float(errors[offset]))
    return best


def max_relative(taken: np.ndarray, reference: np.ndarray) -> float:
    """Largest relative difference of ``taken`` from ``reference`` (the parity measure)."""
    taken, reference = np.asarray(taken, np.float64), np.asarray(reference, np.float64)
    return float((np.abs(taken - reference) / np.maximum(np.abs(reference), 1e-6)).max())


def mel_misfit(utt, signal: np.ndarray, lead: int, k: int, offset: int) -> float:
    """max_relative of the take's mel bands from the file's at the alignment (k, offset)."""
    mel, _ = features.meyda_features(np.concatenate([np.zeros(lead + k, np.float32), signal]))
    reference = mel[offset : offset + utt.n_frames]
    return max_relative(utt.mel_bands, reference) if len(reference) == utt.n_frames else np.inf


def login(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))  # home


@pytest.fixture
def consenting_user(db):
    user = UserFactory(username="dana", password=PASSWORD)
    voice_consent_give(user=user, version=CONSENT_VERSION)
    return user


# --------------------------------------------------------------------------------------------------
# The feature contract, end to end


def record_clean_take(page, microphone, wav: Path, signal: np.ndarray, lead: int, takes: int = 4):
    """Record ``wav`` through the enroll page: (payload, utterance, k, offset) of a take whose rms
    and mel bands are the file's, frame for frame.

    The fake microphone plays in real time, through one audio context into the page's: a starved
    machine (seen on a loaded 2-core VM) can drop or repeat audio blocks on the way, and such a take
    is not the file. It shows as an rms misfit far above float rounding, or, where the glitch falls
    in near-silence (rms misfit tiny in absolute terms, seen on a slow 2-core VM), as mel bands that
    differ from the file's at that alignment; such a take is recorded again.
    """
    misfit = np.inf
    for _ in range(takes):
        microphone.queue.append(wav)
        page.goto("/enroll/")
        start = page.get_by_role("button", name="Start")
        start.wait_for()
        with page.expect_request(lambda r: r.method == "POST" and TRAIN_URL.match(r.url)) as posted:
            start.click()
        payload = posted.value.post_data_json
        page.get_by_role("button", name="Pause").click()
        utt = features.parse_utterance(payload)  # the server's own validation accepts it
        k, offset, misfit = align(utt.rms.astype(np.float64), signal, lead)
        rms_clean = misfit <= 1e-4 * float(utt.rms.max()) + 1e-7
        if rms_clean and mel_misfit(utt, signal, lead, k, offset) <= 1e-4:
            return payload, utt, k, offset
    pytest.fail(f"no take of {wav.name} matched the file in {takes} takes (misfit {misfit:.3g})")


# Two English words by two speakers, 16 kHz (no resampling anywhere), each one run of speech
# (a click before the word would end the take early: the page keeps the first word it hears).
@pytest.mark.parametrize("recording", ["w12_15307110252_01.wav", "w13_16307130025_02.wav"])
def test_page_posts_the_features_extract_features_computes(
    browser_page, consenting_user, microphone, corpus_dir, tmp_path, recording
):
    wav = corpus_dir / "dspspeech20" / recording
    signal, rate = features.read_wav(wav)
    assert rate == features.SAMPLE_RATE
    page = browser_page
    login(page, consenting_user.username)
    # The take the page heard: silence, then the recording (at an unknown sample offset).
    lead = features.FRAME_LENGTH * 4
    payload, utt, k, offset = record_clean_take(page, microphone, wav, signal, lead)

    assert payload["encoding"] == "float32"
    assert page.evaluate("window.__fakeMic.played[0].rate") == features.SAMPLE_RATE
    constraints = page.evaluate("window.__fakeMic.constraints[0].audio")
    assert constraints["echoCancellation"] is False
    assert constraints["noiseSuppression"] is False
    assert constraints["autoGainControl"] is False

    heard = np.concatenate([np.zeros(lead + k, np.float32), signal])
    cut = tmp_path / "heard.wav"
    write_wav(cut, heard[offset * features.HOP_LENGTH :])
    reference = extract_features_command(cut)
    ref_mel = np.asarray(reference["mel_bands"], dtype=np.float64)
    ref_rms = np.asarray(reference["rms"], dtype=np.float64)

    # About the frame count of the end-pointing rule replayed on the server's features. The page
    # ends the take live (0.5 s after the voice, checked as audio blocks arrive), so on a busy
    # machine the take holds a few tail frames more or less than this replay assumes, which can
    # move the speech run's end by a few frames (3 seen with one core for pytest and Chromium).
    # The features themselves are compared frame by frame below.
    trailing = np.zeros(features.SAMPLE_RATE // 2, np.float32)
    _, heard_rms = features.meyda_features(np.concatenate([heard, trailing]))
    start_frame, end_frame = find_speech(heard_rms)
    assert abs(utt.n_frames - (end_frame - start_frame)) <= 5

    n = utt.n_frames
    assert len(ref_mel) >= n
    relative = max_relative(utt.mel_bands, ref_mel[:n])
    assert relative <= 1e-4, (relative, k, offset)
    assert np.allclose(utt.rms, ref_rms[:n], rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------------------------------
# Enrollment and verification pages with a real fsdd speaker

GENUINE = "george"
IMPOSTOR = "jackson"
# fsdd indices: enrollment takes 0.., verification answers from here on (never enrolled).
ANSWER_INDEX = 30


@pytest.fixture
def background_model(transactional_db):
    call_command("install_default_ubm", stdout=io.StringIO())
    return selectors.background_model_active()


def sign_up(page, username: str) -> None:
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email address").fill(f"{username}@example.com")
    page.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r".*/accounts/profile/$"))


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size < 300_000
    return path


# The prompt is random; pinning it (as verification/tests/factories.prompt does for the API tests)
# makes a decision test independent of the draw. Same digits as the API tests (distinct, as
# real challenges are).
PINNED_DIGITS = "31452"


def pin_challenges(page, digits: str = PINNED_DIGITS) -> None:
    """Let the page fetch real challenges, then pin their digits in the database and the answer."""

    def handle(route) -> None:
        response = route.fetch()
        body = response.json()
        if response.status == 201:
            Challenge.objects.filter(nonce=body["id"]).update(digits=digits)
            body["digits"] = [int(d) for d in digits]
            # Playwright runs this callback in its own context, where Django opened a separate
            # connection: close it, or it outlives the test database.
            connection.close()
        route.fulfill(response=response, json=body)

    page.route(re.compile(r".*/api/v1/challenges/$"), handle)


def verify_through_page(page, screenshot_as: str | None = None) -> str:
    """Run one verification on /verify/ and return the result heading (optionally saving a
    screenshot half-way through the prompt)."""
    page.goto("/verify/")
    page.get_by_role("button", name="Start").click()
    if screenshot_as:
        page.locator("#steps li.done").nth(1).wait_for(timeout=60_000)
        page.locator('#prompt[data-state="hearing"]').wait_for()
        screenshot(page, screenshot_as)
    result = page.locator("#result-title")
    result.wait_for(state="visible", timeout=60_000)
    return result.inner_text()


def test_new_user_consents_enrolls_through_the_page_and_is_accepted(
    browser_page, background_model, microphone
):
    page = browser_page
    sign_up(page, "erin")
    user = User.objects.get(username="erin")

    page.goto("/enroll/")
    consent = page.locator("#consent")
    consent.wait_for(state="visible")
    assert CONSENT_VERSION in consent.inner_text()
    page.get_by_role("button", name="Give consent and continue").click()
    assert page.get_by_role("alert").inner_text().startswith("Tick the box")
    assert not has_current_consent(user=user)
    page.get_by_label(re.compile("I agree")).check()
    page.get_by_role("button", name="Give consent and continue").click()
    page.locator("#record").wait_for(state="visible")
    assert has_current_consent(user=user)

    microphone.speak(GENUINE, first_index=0)
    page.get_by_role("button", name="Start").click()
    page.locator("#progress li.complete").nth(2).wait_for(timeout=60_000)
    page.locator('#prompt[data-state="hearing"]').wait_for()  # the meter shows the voice
    screenshot(page, "enroll")
    page.locator("#done").wait_for(state="visible", timeout=120_000)

    status = selectors.enrollment_status(user=user)
    assert status.trained
    # Every take is from today: the page asks for more on another day.
    assert status.enrollment_days == 1
    assert page.locator("#one-day").is_visible()
    assert "on another day" in page.locator("#one-day").inner_text()
    need = status.min_utterances_per_digit
    assert all(count == need for count in status.utterances_per_digit.values())
    assert page.evaluate("window.__fakeMic.errors") == []
    # Every saved take is the digit that was prompted, by the genuine speaker.
    assert all(name.startswith(f"{digit}_{GENUINE}_") for digit, name in microphone.served)
    # Prompts come in shuffled rounds of all ten digits (ascending by chance: p = 1/10!).
    first_round = [digit for digit, _ in microphone.served[:10]]
    assert sorted(first_round) == list(range(10))
    assert first_round != list(range(10))

    microphone.speak(GENUINE, first_index=ANSWER_INDEX)
    pin_challenges(page)
    heading = verify_through_page(page, screenshot_as="verify")
    attempt = user.verification_attempts.get()
    assert (attempt.decision, heading) == ("accept", "Accepted: it's you"), attempt.reason


@pytest.fixture
def enrolled_user(background_model, corpus_dir):
    """A user enrolled (through the services) with the genuine speaker's first recordings."""
    user = UserFactory(username="frank", password=PASSWORD)
    voice_consent_give(user=user, version=CONSENT_VERSION)
    folder = corpus_dir / "fsdd"
    utterances = [
        features.wav_to_utterance(folder / f"{d}_{GENUINE}_{i}.wav", digit=d)
        for i in range(3)
        for d in range(10)
    ]
    services.voiceprint_train(user=user, utterances=utterances)
    return user


@pytest.mark.parametrize(("days_back", "nudged"), [(0, True), (3, False)], ids=["one-day", "two"])
def test_enrolled_page_asks_for_samples_on_another_day_until_it_has_some(
    browser_page, enrolled_user, days_back, nudged
):
    first = EnrollmentUtterance.objects.filter(user=enrolled_user).order_by("id").first()
    earlier = first.created_at - timedelta(days=days_back)
    EnrollmentUtterance.objects.filter(pk=first.pk).update(created_at=earlier)
    page = browser_page
    login(page, enrolled_user.username)
    page.goto("/enroll/")
    page.locator("#done").wait_for(state="visible")
    assert page.locator("#one-day").is_visible() is nudged


def test_another_speaker_is_rejected_and_the_attempt_is_in_history(
    browser_page, enrolled_user, microphone
):
    page = browser_page
    login(page, enrolled_user.username)
    microphone.speak(IMPOSTOR, first_index=ANSWER_INDEX)
    pin_challenges(page)
    heading = verify_through_page(page)
    attempt = enrolled_user.verification_attempts.get()
    assert (attempt.decision, heading) == ("reject", "Not accepted"), attempt.reason
    assert "score" not in page.locator("#result").inner_text().lower()

    microphone.speak(GENUINE, first_index=ANSWER_INDEX)
    page.get_by_role("button", name="Try again").click()
    page.locator("#result").wait_for(state="hidden")
    page.locator("#result").wait_for(state="visible", timeout=60_000)

    page.goto("/history/")
    rows = page.locator("#attempts tbody tr")
    rows.nth(1).wait_for()
    screenshot(page, "history")
    retried = enrolled_user.verification_attempts.order_by("-id").first()
    assert retried.decision == "accept", retried.reason
    assert rows.count() == 2
    assert "Accepted" in rows.nth(0).inner_text()
    assert "Rejected" in rows.nth(1).inner_text()


# --------------------------------------------------------------------------------------------------
# Quality feedback and the problems a person can meet


def _scaled_copy(source: Path, target: Path, gain: float) -> Path:
    signal, rate = features.read_wav(source)
    ints = np.clip(np.round(signal.astype(np.float64) * gain * 32768.0), -32768, 32767)
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(ints.astype("<i2").tobytes())
    return target


@pytest.mark.parametrize(
    ("gain", "message"),
    [(0.03, "We could not hear you clearly"), (40.0, "too loud and the sound distorted")],
    ids=["too-quiet", "clipped"],
)
def test_bad_take_is_explained_not_sent_and_can_be_re_recorded(
    browser_page, consenting_user, microphone, corpus_dir, tmp_path, gain, message
):
    page = browser_page
    posts = []
    page.on("request", lambda r: posts.append(r) if TRAIN_URL.match(r.url) else None)
    login(page, consenting_user.username)
    page.goto("/enroll/")
    good = microphone.file_for
    served = []

    def first_take_bad(digit: int) -> Path:
        """The prompted digit's recording; the first take at ``gain``, the rest unchanged."""
        served.append(digit)
        path = good(digit)
        return _scaled_copy(path, tmp_path / "bad.wav", gain) if len(served) == 1 else path

    microphone.file_for = first_take_bad
    page.get_by_role("button", name="Start").click()
    rerecord = page.get_by_role("button", name="Re-record")
    rerecord.wait_for(state="visible", timeout=30_000)
    assert message in page.locator("#feedback").inner_text()
    assert posts == []
    assert page.evaluate("document.activeElement.id") == "rerecord"  # focus moved for keyboards

    with page.expect_request(lambda r: r.method == "POST" and TRAIN_URL.match(r.url)):
        rerecord.click()
    page.locator("#feedback", has_text="Saved").wait_for()


def test_denied_microphone_explains_how_to_allow_it(browser_page, consenting_user):
    page = browser_page
    page.context.add_init_script('window.__fakeMicMode = "deny";')
    login(page, consenting_user.username)
    page.goto("/enroll/")
    page.get_by_role("button", name="Start").click()
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    assert "Microphone access was blocked" in alert.inner_text()
    assert page.get_by_role("button", name="Start").is_enabled()


def test_plain_http_on_another_host_explains_https(
    browser_page, consenting_user, live_server, settings
):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, INSECURE_HOST]
    page = browser_page
    port = live_server.url.rsplit(":", 1)[1]
    page.goto(f"http://{INSECURE_HOST}:{port}/accounts/login/")
    page.get_by_label("Username").fill(consenting_user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"http://{INSECURE_HOST}:{port}/enroll/")
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    assert "secure page" in alert.inner_text()
    assert "HTTPS" in alert.inner_text()
    assert page.get_by_role("button", name="Start").is_disabled()


def test_browser_without_getusermedia_is_told_so(browser_page, consenting_user):
    page = browser_page
    page.context.add_init_script(
        "Object.defineProperty(navigator, 'mediaDevices', {value: undefined});"
    )
    login(page, consenting_user.username)
    page.goto("/enroll/")
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    assert "This browser cannot record here" in alert.inner_text()


@pytest.mark.parametrize("path", ["/enroll/", "/verify/", "/history/", "/accounts/profile/"])
def test_page_fits_a_phone_screen_and_labels_its_controls(browser_page, enrolled_user, path):
    page = browser_page
    login(page, enrolled_user.username)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input, meter, select, textarea, a')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.outerHTML)"""
    )
    assert unnamed == []


# --------------------------------------------------------------------------------------------------
# Lockout, and the account page's voice data


def test_locked_account_is_told_for_how_long_and_retry_waits(
    browser_page, enrolled_user, microphone, settings
):
    # Earlier failures (answers to prompts that do not exist) locked the voice factor.
    for _ in range(settings.VERIFICATION_LOCKOUT_FAILURES):
        services.verification_score(
            user=enrolled_user,
            challenge_id="no-such-challenge",
            utterances=[],
            client=services.ClientInfo(),
        )
    page = browser_page
    login(page, enrolled_user.username)
    microphone.speak(GENUINE, first_index=ANSWER_INDEX)
    heading = verify_through_page(page)
    assert heading == "Too many failed attempts"
    detail = page.locator("#result-detail").inner_text()
    assert re.search(r"Try again in \d+ seconds? \(at \d", detail), detail
    assert "password still works" in detail
    retry = page.locator("#retry")
    assert retry.is_disabled()
    assert re.fullmatch(r"Try again in \d+ s", retry.inner_text())


def test_password_guessing_is_paused_with_a_page(browser_page, consenting_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page = browser_page

    def sign_in(password: str):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(consenting_user.username)
        page.get_by_label("Password").fill(password)
        with page.expect_response(re.compile(r"/accounts/login/$")) as answer:
            page.get_by_role("button", name="Log in").click()
        return answer.value

    assert [sign_in("wrong").status for _ in range(2)] == [200, 200]
    assert sign_in("wrong").status == 429
    paused = sign_in(PASSWORD)  # the right password waits too
    assert paused.status == 429
    assert paused.headers["retry-after"] == "900"
    assert page.get_by_role("heading").inner_text() == "Sign-in paused"
    assert "Try again in 15 minutes" in page.get_by_role("alert").inner_text()
    page.goto("/accounts/profile/")
    assert "/accounts/login/" in page.url  # still signed out


def test_account_page_exports_my_data_and_deletes_my_voiceprint(browser_page, enrolled_user):
    page = browser_page
    login(page, enrolled_user.username)
    page.goto("/accounts/profile/")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert enrolled_user.username in json.dumps(exported)

    page.get_by_role("button", name="Delete my voiceprint").click()
    assert page.evaluate("document.activeElement.id") == "delete-confirm-title"
    assert selectors.speaker_model_get(user=enrolled_user) is not None
    page.get_by_role("button", name="Yes, delete my voiceprint").click()
    page.locator("#voice-status", has_text="Your voiceprint was deleted").wait_for()
    assert selectors.speaker_model_get(user=enrolled_user) is None
    assert not enrolled_user.enrollment_utterances.exists()


# Safari reportedly ignores AudioContext({sampleRate}); this makes Chromium do the same.
IGNORE_CONTEXT_RATE = """
(() => {
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(options = {}) {
      const { sampleRate, ...rest } = options;
      super(rest);
    }
  };
})();
"""


def resampled_take_misfit(page, microphone, wav: Path, signal: np.ndarray, tmp_path: Path):
    """Record ``wav`` through the enroll page once: (frame-count misfit, median band-energy error,
    median |mel_bands| error) of the take against the file, on the file's speech frames."""
    microphone.queue.append(wav)
    page.goto("/enroll/")
    start = page.get_by_role("button", name="Start")
    start.wait_for()
    with page.expect_request(
        lambda r: r.method == "POST" and TRAIN_URL.match(r.url), timeout=30_000
    ) as posted:
        start.click()
    page.get_by_role("button", name="Pause").click()
    context_rate = page.evaluate("new AudioContext().sampleRate")
    assert context_rate != features.SAMPLE_RATE
    utt = features.parse_utterance(posted.value.post_data_json)

    lead = features.FRAME_LENGTH * 4
    k, offset, _ = align(utt.rms.astype(np.float64), signal, lead)
    heard = np.concatenate([np.zeros(lead + k, np.float32), signal])
    cut = tmp_path / "heard.wav"
    write_wav(cut, heard[offset * features.HOP_LENGTH :])
    reference = extract_features_command(cut)
    n = utt.n_frames
    ref_mel = np.asarray(reference["mel_bands"], dtype=np.float64)[:n]
    ref_rms = np.asarray(reference["rms"], dtype=np.float64)[:n]
    trailing = np.zeros(features.SAMPLE_RATE // 2, np.float32)
    _, heard_rms = features.meyda_features(np.concatenate([heard, trailing]))
    start_frame, end_frame = find_speech(heard_rms)

    speech = ref_rms > PEAK_FACTOR * ref_rms.max()
    energy = np.expm1(ref_mel[speech])
    energy_error = np.abs(np.expm1(utt.mel_bands[speech].astype(np.float64)) - energy)
    return (
        abs(n - (end_frame - start_frame)),
        float(np.median(energy_error.sum(axis=1) / energy.sum(axis=1))),
        float(np.median(np.abs(utt.mel_bands[speech] - ref_mel[speech]))),
    )


def test_page_resamples_when_the_context_does_not_run_at_16k(
    browser_page, consenting_user, microphone, corpus_dir, tmp_path
):
    wav = corpus_dir / "dspspeech20" / "w12_15307110252_01.wav"
    signal, _ = features.read_wav(wav)
    page = browser_page
    page.context.add_init_script(IGNORE_CONTEXT_RATE)
    login(page, consenting_user.username)

    # Two resamplings (the 16 kHz stream to the context's rate, the take back to 16 kHz) and a
    # sub-sample offset are not bit-exact. Measured here at 44.1 kHz: median band-energy error
    # 3.8-4.6 % and median |mel_bands| error 0.003-0.005 on speech frames in quiet runs, once
    # 11 % in a CI run and once 45 % on an idle CI machine (the fake microphone's audio callback
    # is not real-time, and a dropped or repeated block misaligns the take), so a glitched take
    # is recorded again, as record_clean_take does. The bounds sit well below what a wrong rate
    # gives on every take: a take that skipped resampling would be 2.76x too long (the frame
    # count) and its spectrum shifted by that factor.
    takes = []
    for _ in range(3):
        takes.append(resampled_take_misfit(page, microphone, wav, signal, tmp_path))
        frames, energy_error, mel_error = takes[-1]
        if frames <= 2 and energy_error < 0.2 and mel_error < 0.03:
            break
    else:
        pytest.fail(f"no take matched the file after resampling: {takes}")


def test_consent_and_recording_work_from_the_keyboard_alone(browser_page, microphone, db):
    user = UserFactory(username="gail", password=PASSWORD)
    page = browser_page
    login(page, user.username)
    page.goto("/enroll/")
    page.locator("#consent").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "consent-title"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "consent-check"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator("#record").wait_for(state="visible")
    assert has_current_consent(user=user)
    assert page.evaluate("document.activeElement.id") == "record-title"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "start"
    with page.expect_request(lambda r: r.method == "POST" and TRAIN_URL.match(r.url)):
        page.keyboard.press("Enter")


def test_account_page_withdraws_consent_and_the_voiceprint_goes_with_it(
    browser_page, enrolled_user
):
    page = browser_page
    login(page, enrolled_user.username)
    page.goto("/accounts/profile/")
    page.get_by_role("button", name="Withdraw my consent").click()
    page.get_by_role("button", name="Yes, withdraw and delete").click()
    page.locator("#voice-status", has_text="consent was withdrawn").wait_for()
    assert not has_current_consent(user=enrolled_user)
    assert selectors.speaker_model_get(user=enrolled_user) is None
