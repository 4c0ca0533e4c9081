// Small DOM helpers shared by the pages: status and alert regions, focus moves, the level meter.

export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing element ${selector}`);
  return el;
}

/** Polite live region: progress the user should hear without being interrupted. */
export function announce(el, text) {
  // Clearing first makes screen readers repeat an identical message (e.g. the same digit twice).
  el.textContent = "";
  window.requestAnimationFrame(() => {
    el.textContent = text;
  });
}

/** Assertive region for problems; empty text hides it. */
export function showAlert(el, text, kind = "bad") {
  el.textContent = text || "";
  el.hidden = !text;
  el.dataset.kind = kind;
}

/** Move keyboard and screen-reader focus to an element (headings get tabindex="-1" in templates). */
export function focus(el) {
  if (!el) return;
  if (!el.hasAttribute("tabindex") && !/^(BUTTON|A|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) {
    el.setAttribute("tabindex", "-1");
  }
  el.focus({ preventScroll: false });
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

/** Drive a <meter> from the recorder's 0..1 level, at most once per animation frame. */
export function levelMeter(meter) {
  let pending = null;
  return (level) => {
    const first = pending === null;
    pending = level;
    if (first) {
      window.requestAnimationFrame(() => {
        meter.value = pending;
        meter.textContent = `${Math.round(pending * 100)} %`;
        pending = null;
      });
    }
  };
}

/** Resolve with the id of whichever of the given buttons is pressed first. */
export function waitForChoice(buttons) {
  return new Promise((resolve) => {
    const handlers = [];
    for (const button of buttons) {
      const handler = () => {
        buttons.forEach((b, i) => b.removeEventListener("click", handlers[i]));
        resolve(button.id);
      };
      handlers.push(handler);
      button.addEventListener("click", handler);
    }
  });
}

/** "in 2 minutes (at 14:32)" for a delay in seconds. */
export function describeDelay(seconds) {
  const when = new Date(Date.now() + seconds * 1000);
  const at = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (seconds < 60) return `in ${seconds} second${seconds === 1 ? "" : "s"} (at ${at})`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return `in ${minutes} minute${minutes === 1 ? "" : "s"} (at ${at})`;
  const hours = Math.round(minutes / 60);
  return `in about ${hours} hours (at ${when.toLocaleString()})`;
}

/** The prompt box (#prompt with #prompt-digit and #prompt-label): returns setState(state, digit).
 * `digit` (when given) is the digit on show, null for none. Each "listening" state (sent by the
 * recorder as a take starts) counts a new take in data-take, which the browser tests wait on. */
export function promptDisplay(labels, root = document) {
  const box = $("#prompt", root);
  const digitEl = $("#prompt-digit", root);
  const labelEl = $("#prompt-label", root);
  let takes = 0;
  return function setState(state, digit) {
    if (digit !== undefined) {
      box.dataset.digit = digit === null ? "" : String(digit);
      digitEl.textContent = digit === null ? "–" : String(digit);
    }
    if (state === "listening") {
      takes += 1;
      box.dataset.take = String(takes);
    }
    box.dataset.state = state;
    labelEl.textContent = labels[state] || "";
  };
}
