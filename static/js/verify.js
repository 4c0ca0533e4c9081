// Verification page: fetch a challenge, record one utterance per prompted digit, submit, show the decision.
import { ApiError, api } from "./api.js";
import { reasonText } from "./reasons.js";
import { Recorder, contractMismatch, environmentProblem, utterancePayload } from "./recorder.js";
import {
  $,
  announce,
  describeDelay,
  focus,
  levelMeter,
  promptDisplay,
  show,
  showAlert,
  waitForChoice,
} from "./ui.js";

const root = $("#verify-app");
const urls = root.dataset;
const statusEl = $("#status");
const alertEl = $("#alert");
const challengeSection = $("#challenge");
const resultSection = $("#result");
const feedback = $("#feedback");
const steps = $("#steps");
const buttons = { start: $("#start"), rerecord: $("#rerecord"), cancel: $("#cancel"), retry: $("#retry") };

const STATE_LABELS = {
  idle: "Press Start when you are ready.",
  opening: "Starting the microphone…",
  ready: "Get ready to say:",
  listening: "Say this digit now:",
  hearing: "Listening… (stops by itself)",
  processing: "Checking the recording…",
  retry: "Let's try that digit again:",
  sending: "Checking your voice…",
};

let contract = null;
let running = false;

const setPromptState = promptDisplay(STATE_LABELS);

const recorder = new Recorder({
  onLevel: levelMeter($("#level")),
  onState: (state) => setPromptState(state),
});


function renderSteps(count, current) {
  steps.replaceChildren(
    ...Array.from({ length: count }, (_, i) => {
      const li = document.createElement("li");
      li.className = i < current ? "done" : i === current ? "current" : "";
      if (i === current) li.setAttribute("aria-current", "step");
      li.textContent = i < current ? "✓" : String(i + 1);
      li.setAttribute("aria-label", `Digit ${i + 1} of ${count}${i < current ? ", recorded" : ""}`);
      return li;
    }),
  );
}

function setRunning(value) {
  running = value;
  show(buttons.start, !value);
  show(buttons.cancel, value);
}

function showResult(kind, title, detail) {
  setRunning(false);
  recorder.close();
  root.dataset.state = "result";
  root.dataset.decision = kind;
  setPromptState("idle", null);
  show(challengeSection, false);
  const heading = $("#result-title");
  heading.textContent = title;
  heading.className = kind === "accept" ? "ok" : kind === "reject" ? "bad" : "warn";
  $("#result-detail").textContent = detail;
  show(resultSection, true);
  announce(statusEl, `${title} ${detail}`);
  focus(heading);
}

let unlockTimer = null;

/** Keep "Try again" disabled until the lockout ends, counting down on the button. */
function holdRetry(seconds) {
  clearInterval(unlockTimer);
  const until = Date.now() + seconds * 1000;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(unlockTimer);
      buttons.retry.disabled = false;
      buttons.retry.textContent = "Try again";
      return;
    }
    buttons.retry.disabled = true;
    buttons.retry.textContent = `Try again in ${left} s`;
  };
  tick();
  unlockTimer = setInterval(tick, 1000);
}

function showLockout(err) {
  const body = err.body || {};
  if (body.reason === "voice_disabled" || body.code === "voice_disabled") {
    showResult(
      "locked",
      "Voice verification is switched off",
      "After too many failed attempts, voice verification is disabled for your account until support " +
        "re-enables it. Your password still works.",
    );
    buttons.retry.disabled = true;
    return;
  }
  const wait = err.retryAfter ?? body.retry_after ?? null;
  if (body.reason !== "locked_out") {
    // DRF's throttle: too many requests in a short time, not failed attempts.
    showResult(
      "locked",
      "Too many requests",
      wait != null ? `Please wait and try again ${describeDelay(wait)}.` : "Please wait a moment and try again.",
    );
  } else {
    showResult(
      "locked",
      "Too many failed attempts",
      wait != null
        ? `Voice verification is locked. Try again ${describeDelay(wait)}. Your password still works.`
        : "Voice verification is locked for a while. Try again later; your password still works.",
    );
  }
  if (wait != null) holdRetry(wait);
}

function handleApiError(err) {
  const body = (err instanceof ApiError && err.body) || {};
  if (err instanceof ApiError && (err.status === 429 || body.reason === "voice_disabled")) {
    showLockout(err);
  } else if (body.code === "not_enrolled" || body.reason === "not_enrolled") {
    showNotEnrolled();
  } else {
    setRunning(false);
    recorder.close();
    setPromptState("idle", null);
    showAlert(alertEl, err.message || String(err));
    focus(buttons.start);
  }
}

function showNotEnrolled() {
  root.dataset.state = "not-enrolled";
  show(challengeSection, false);
  show($("#not-enrolled"), true);
  focus($("#not-enrolled-title"));
}

async function attempt() {
  showAlert(alertEl, "");
  feedback.textContent = "";
  setRunning(true);
  root.dataset.state = "recording";
  setPromptState("opening", null);
  let challenge;
  try {
    await recorder.open();
    challenge = await api(urls.challengesUrl, { method: "POST", body: {} });
  } catch (err) {
    if (err instanceof ApiError) handleApiError(err);
    else {
      setRunning(false);
      setPromptState("idle", null);
      showAlert(alertEl, err.message);
      focus(buttons.start);
    }
    return;
  }
  const digits = challenge.digits.map(Number);
  const expiresAt = challenge.expires_at ? Date.parse(challenge.expires_at) : null;
  const utterances = [];
  let index = 0;
  while (running && index < digits.length) {
    const digit = digits[index];
    renderSteps(digits.length, index);
    setPromptState("ready", digit);
    announce(statusEl, `Digit ${index + 1} of ${digits.length}: say ${digit}.`);
    const take = await recorder.record();
    if (!take || !running) return;
    if (!take.problem) {
      utterances.push(utterancePayload(take, digit, contract));
      feedback.textContent = "";
      index += 1;
      continue;
    }
    setPromptState("retry");
    feedback.textContent = take.message;
    feedback.dataset.kind = "warn";
    announce(statusEl, take.message);
    show(buttons.rerecord, true);
    focus(buttons.rerecord);
    const choice = await waitForChoice([buttons.rerecord, buttons.cancel]);
    show(buttons.rerecord, false);
    if (choice !== "rerecord") return;
  }
  renderSteps(digits.length, digits.length);
  if (expiresAt && Date.now() > expiresAt) {
    showResult("expired", "The prompt expired", "That took a little too long. Press Try again for new digits.");
    return;
  }
  setPromptState("sending", null);
  try {
    const result = await api(urls.scoreUrl, {
      method: "POST",
      body: { challenge: challenge.id, utterances },
    });
    if (result.decision === "accept") {
      showResult("accept", "Accepted: it's you", "Your voice matched your voiceprint.");
    } else if (result.reason === "locked_out" || result.reason === "voice_disabled") {
      showLockout(new ApiError(429, result, null));
    } else if (result.reason === "not_enrolled") {
      showNotEnrolled();
    } else {
      showResult("reject", "Not accepted", `${reasonText(result.reason)} You can try again.`);
    }
  } catch (err) {
    handleApiError(err);
  }
}

function cancel() {
  setRunning(false);
  recorder.close();
  setPromptState("idle", null);
  feedback.textContent = "";
  steps.replaceChildren();
  show(buttons.rerecord, false);
  announce(statusEl, "Cancelled.");
  focus(buttons.start);
}

async function init() {
  const problem = environmentProblem();
  if (problem) {
    showAlert(alertEl, problem.message);
    buttons.start.disabled = true;
  }
  try {
    const [contractBody, status] = await Promise.all([api(urls.contractUrl), api(urls.voiceprintUrl)]);
    contract = contractBody;
    const mismatch = contractMismatch(contract);
    if (mismatch) {
      showAlert(alertEl, `This page is out of date with the server (${mismatch}). Reload the page.`);
      buttons.start.disabled = true;
    }
    if (!(status.trained ?? status.model_trained)) {
      showNotEnrolled();
      return;
    }
    root.dataset.state = "ready";
    show(challengeSection, true);
  } catch (err) {
    showAlert(alertEl, err.message || String(err));
  }
}

buttons.start.addEventListener("click", () => {
  if (!running) attempt();
});
buttons.cancel.addEventListener("click", cancel);
buttons.retry.addEventListener("click", () => {
  show(resultSection, false);
  show(challengeSection, true);
  delete root.dataset.decision;
  steps.replaceChildren();
  focus($("#challenge-title"));
  attempt();
});
window.addEventListener("pagehide", () => recorder.close());
init();
