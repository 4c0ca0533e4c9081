// Enrollment page: consent first, then prompted digits in shuffled order until the voiceprint is trained.
import { ApiError, api } from "./api.js";
import {
  Recorder,
  contractMismatch,
  environmentProblem,
  utterancePayload,
} from "./recorder.js";
import { $, announce, focus, levelMeter, promptDisplay, show, showAlert, waitForChoice } from "./ui.js";

const root = $("#enroll-app");
const urls = root.dataset;
const statusEl = $("#status");
const alertEl = $("#alert");
const consentSection = $("#consent");
const recordSection = $("#record");
const doneSection = $("#done");
const feedback = $("#feedback");
const progressList = $("#progress");
const buttons = {
  start: $("#start"),
  stop: $("#stop"),
  rerecord: $("#rerecord"),
  skip: $("#skip"),
  more: $("#more"),
};

const STATE_LABELS = {
  idle: "Press Start when you are ready.",
  opening: "Starting the microphone…",
  ready: "Get ready to say:",
  listening: "Say this digit now:",
  hearing: "Listening… (stops by itself)",
  processing: "Checking the recording…",
  sending: "Saving…",
  retry: "Let's try that digit again:",
  paused: "Paused. Press Start to continue.",
  done: "All done.",
};

let contract = null;
let progress = { counts: Array(10).fill(0), need: 3, trained: false };
let queue = [];
let running = false;

const setPromptState = promptDisplay(STATE_LABELS);

const recorder = new Recorder({
  onLevel: levelMeter($("#level")),
  onState: (state) => setPromptState(state),
});


function shuffled(items) {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Rounds of the digits still needed, each round shuffled, never the same digit twice in a row. */
function buildQueue(counts, need, extraRound = false) {
  const remaining = counts.map((c) => Math.max(0, need - c));
  if (extraRound) remaining.fill(1);
  const out = [];
  while (remaining.some((r) => r > 0)) {
    let round = shuffled([...remaining.keys()].filter((d) => remaining[d] > 0));
    if (out.length && round.length > 1 && round[0] === out[out.length - 1]) {
      round = [...round.slice(1), round[0]];
    }
    for (const d of round) remaining[d] -= 1;
    out.push(...round);
  }
  return out;
}

/** Normalise the voiceprint status / train response into counts per digit, target and trained flag. */
function readProgress(body) {
  const source = body.progress || body;
  const perDigit = source.utterances_per_digit || {};
  const counts = Array.from({ length: 10 }, (_, d) => Number(perDigit[d] ?? perDigit[String(d)] ?? 0));
  const need = Number(source.min_utterances_per_digit ?? progress.need);
  const trained = Boolean(source.trained ?? source.model_trained ?? body.trained);
  const days = Number(source.enrollment_days ?? 0);
  return { counts, need, trained, days };
}

function renderProgress() {
  const { counts, need } = progress;
  progressList.replaceChildren(
    ...counts.map((count, digit) => {
      const li = document.createElement("li");
      li.dataset.digit = String(digit);
      const complete = count >= need;
      li.className = complete ? "complete" : "";
      const label = document.createElement("span");
      label.className = "digit";
      label.textContent = String(digit);
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${Math.min(100, (100 * count) / need)}%`;
      bar.append(fill);
      const text = document.createElement("span");
      text.className = "count";
      text.textContent = `${Math.min(count, need)}/${need}`;
      li.append(label, bar, text);
      li.setAttribute("aria-label", `Digit ${digit}: ${Math.min(count, need)} of ${need} recorded`);
      return li;
    }),
  );
  const done = counts.reduce((a, c) => a + Math.min(c, need), 0);
  $("#progress-summary").textContent = `${done} of ${need * 10} recordings`;
}

/** One line of quality feedback for a usable take: how long the word was and how loud. */
function qualityNote(take) {
  const seconds = ((take.speech.end - take.speech.start) * 0.01).toFixed(2);
  const peakDb = 20 * Math.log10(take.speech.peak + 1e-9);
  const loudness = peakDb < -35 ? "a little quiet, but usable" : peakDb > -6 ? "loud, but clean" : "a good level";
  return `${seconds} s of speech, ${loudness}.`;
}

function enrollmentComplete() {
  return progress.trained && progress.counts.every((c) => c >= progress.need);
}

function setRunning(value) {
  running = value;
  show(buttons.start, !value);
  show(buttons.stop, value);
  root.dataset.running = value ? "true" : "false";
}

function showRetry(visible) {
  show(buttons.rerecord, visible);
  show(buttons.skip, visible);
}

function describeError(err) {
  if (err instanceof ApiError && err.status === 403) {
    return err.message || "You are not allowed to do this. Log in again and retry.";
  }
  return err.message || String(err);
}

/** The done section, with a nudge while every take is from one day (voices change between days). */
function showDone() {
  show($("#one-day"), progress.days === 1);
  show(doneSection, true);
}

async function finish() {
  setRunning(false);
  recorder.close();
  setPromptState("done", null);
  root.dataset.state = "done";
  show(recordSection, false);
  showDone();
  announce(statusEl, "Enrollment complete: your voiceprint is ready.");
  focus($("#done-title"));
}

async function session() {
  showAlert(alertEl, "");
  setRunning(true);
  setPromptState("opening", null);
  try {
    await recorder.open();
  } catch (err) {
    setRunning(false);
    setPromptState("idle", null);
    showAlert(alertEl, err.message);
    focus(buttons.start);
    return;
  }
  while (running && queue.length) {
    const digit = queue[0];
    setPromptState("ready", digit);
    announce(statusEl, `Say ${digit}.`);
    const take = await recorder.record();
    if (!take || !running) break;
    let problem = take.problem ? take.message : null;
    if (!problem) {
      setPromptState("sending");
      try {
        const body = await api(urls.trainUrl, {
          method: "POST",
          body: utterancePayload(take, digit, contract),
        });
        progress = readProgress(body);
        renderProgress();
        queue.shift();
        feedback.textContent = `Saved “${digit}”: ${qualityNote(take)}`;
        feedback.dataset.kind = "ok";
        if (enrollmentComplete()) {
          await finish();
          return;
        }
        if (!queue.length) queue = buildQueue(progress.counts, progress.need, !progress.trained);
        continue;
      } catch (err) {
        if (err instanceof ApiError && err.body && err.body.code === "consent_required") {
          setRunning(false);
          recorder.close();
          await showConsent();
          return;
        }
        if (err instanceof ApiError && [401, 403, 503].includes(err.status)) {
          setRunning(false);
          recorder.close();
          setPromptState("idle", null);
          showAlert(alertEl, describeError(err));
          return;
        }
        problem = `The server did not accept that recording: ${describeError(err)}`;
      }
    }
    // A take we cannot use: say why, and let the user record it again or move on.
    setPromptState("retry");
    feedback.textContent = problem;
    feedback.dataset.kind = "warn";
    announce(statusEl, problem);
    showRetry(true);
    focus(buttons.rerecord);
    const choice = await waitForChoice([buttons.rerecord, buttons.skip, buttons.stop]);
    showRetry(false);
    if (choice === "skip" && queue.length > 1) queue.push(queue.shift());
  }
  if (!running) {
    setPromptState("paused");
  }
}

function pause() {
  setRunning(false);
  recorder.close();
  setPromptState("paused");
  announce(statusEl, "Paused.");
  focus(buttons.start);
}

function renderConsent(consent) {
  consentSection.dataset.version = consent.version;
  $("#consent-version").textContent = consent.version;
  if (consent.text) $("#consent-text").textContent = consent.text;
  root.dataset.state = "consent";
  show(recordSection, false);
  show(doneSection, false);
  show(consentSection, true);
  focus($("#consent-title"));
}

async function showConsent() {
  try {
    renderConsent(await api(urls.consentUrl));
    showAlert(alertEl, "Your consent is needed (again) before more recordings can be saved.", "warn");
  } catch (err) {
    showAlert(alertEl, describeError(err));
  }
}

async function giveConsent(event) {
  event.preventDefault();
  const box = $("#consent-check");
  if (!box.checked) {
    showAlert(alertEl, "Tick the box to confirm that you agree, or leave this page.");
    focus(box);
    return;
  }
  try {
    await api(urls.consentUrl, {
      method: "POST",
      body: { version: consentSection.dataset.version, agreed: true },
    });
  } catch (err) {
    showAlert(alertEl, describeError(err));
    return;
  }
  showAlert(alertEl, "");
  show(consentSection, false);
  startRecordingStep();
}

function startRecordingStep() {
  root.dataset.state = "recording";
  show(recordSection, true);
  queue = buildQueue(progress.counts, progress.need);
  if (!queue.length) queue = buildQueue(progress.counts, progress.need, true);
  renderProgress();
  setPromptState("idle", null);
  focus($("#record-title"));
}

async function init() {
  const problem = environmentProblem();
  if (problem) {
    showAlert(alertEl, problem.message);
    buttons.start.disabled = true;
  }
  try {
    const [contractBody, status, consent] = await Promise.all([
      api(urls.contractUrl),
      api(urls.voiceprintUrl),
      urls.consentUrl ? api(urls.consentUrl) : Promise.resolve({ given: true }),
    ]);
    contract = contractBody;
    const mismatch = contractMismatch(contract);
    if (mismatch) {
      showAlert(alertEl, `This page is out of date with the server (${mismatch}). Reload the page.`);
      buttons.start.disabled = true;
    }
    progress = readProgress(status);
    if (!consent.given) {
      renderConsent(consent);
    } else if (enrollmentComplete()) {
      root.dataset.state = "done";
      renderProgress();
      showDone();
    } else {
      startRecordingStep();
    }
  } catch (err) {
    showAlert(alertEl, describeError(err));
  }
}

$("#consent-form").addEventListener("submit", giveConsent);
buttons.start.addEventListener("click", () => {
  if (!running) session();
});
buttons.stop.addEventListener("click", pause);
buttons.more.addEventListener("click", () => {
  show(doneSection, false);
  show(recordSection, true);
  root.dataset.state = "recording";
  queue = buildQueue(progress.counts, progress.need, true);
  renderProgress();
  focus($("#record-title"));
  session();
});
window.addEventListener("pagehide", () => recorder.close());
init();
