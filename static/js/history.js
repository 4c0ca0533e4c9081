// History page: the signed-in user's own verification attempts, newest first, paged by the API.
import { api } from "./api.js";
import { reasonText } from "./reasons.js";
import { $, announce, focus, show, showAlert } from "./ui.js";

const root = $("#history-app");
const table = $("#attempts");
const body = table.querySelector("tbody");
const more = $("#more");
const statusEl = $("#status");
const alertEl = $("#alert");
let next = null;
let shown = 0;

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function row(attempt) {
  const tr = document.createElement("tr");
  const when = document.createElement("td");
  const time = document.createElement("time");
  const created = attempt.created_at || attempt.time || attempt.timestamp;
  time.dateTime = created;
  time.textContent = created ? dateFormat.format(new Date(created)) : "—";
  when.append(time);
  const decision = document.createElement("td");
  const accepted = attempt.decision === "accept";
  decision.className = accepted ? "ok" : "bad";
  decision.textContent = accepted ? "✓ Accepted" : "✗ Rejected";
  const reason = document.createElement("td");
  reason.textContent = reasonText(attempt.reason);
  tr.append(when, decision, reason);
  return tr;
}

async function load(url) {
  more.disabled = true;
  try {
    const page = await api(url);
    const results = Array.isArray(page) ? page : page.results || [];
    next = Array.isArray(page) ? null : page.next;
    const firstNew = body.children.length;
    body.append(...results.map(row));
    shown += results.length;
    const total = Array.isArray(page) ? shown : (page.count ?? shown);
    show(table, shown > 0);
    show(more, Boolean(next));
    root.dataset.state = "loaded";
    announce(
      statusEl,
      shown === 0 ? "No verification attempts yet." : `Showing ${shown} of ${total} attempts.`,
    );
    if (firstNew > 0 && body.children[firstNew]) focus(body.children[firstNew].cells[0]);
  } catch (err) {
    root.dataset.state = "error";
    statusEl.textContent = "";
    showAlert(alertEl, err.message || String(err));
  } finally {
    more.disabled = false;
  }
}

more.addEventListener("click", () => {
  if (next) load(next);
});
load(`${root.dataset.attemptsUrl}?limit=20`);
