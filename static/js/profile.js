// Account page, "Your voice data": export everything as JSON, delete the voiceprint, withdraw consent
// (each destructive action behind an inline confirmation).
import { api } from "./api.js";
import { $, announce, focus, show, showAlert } from "./ui.js";

const section = $("#voice-data");
const statusEl = $("#voice-status");
const alertEl = $("#voice-alert");

async function exportData() {
  showAlert(alertEl, "");
  announce(statusEl, "Preparing your export…");
  try {
    const data = await api(section.dataset.exportUrl);
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `speakerauth-export-${new Date().toISOString().slice(0, 10)}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    announce(statusEl, "Your data was downloaded as a JSON file.");
  } catch (err) {
    statusEl.textContent = "";
    showAlert(alertEl, `Export failed: ${err.message}`);
  }
}

// One destructive action: ``#<name>`` (the button) opens ``#<name>-confirm``, whose ``-yes``
// sends DELETE to ``url`` and whose ``-no`` closes it again.
function confirmedDelete({ button, name, url, done, failed }) {
  const trigger = $(button);
  const box = $(`#${name}-confirm`);
  const open = (yes) => {
    show(box, yes);
    trigger.setAttribute("aria-expanded", String(yes));
  };
  trigger.setAttribute("aria-controls", `${name}-confirm`);
  trigger.setAttribute("aria-expanded", "false");
  trigger.addEventListener("click", () => {
    open(true);
    focus($(`#${name}-confirm-title`));
  });
  $(`#${name}-no`).addEventListener("click", () => {
    open(false);
    focus(trigger);
  });
  $(`#${name}-yes`).addEventListener("click", async () => {
    showAlert(alertEl, "");
    try {
      await api(url, { method: "DELETE" });
      show(box, false);
      section.dataset.deleted = "true";
      announce(statusEl, done);
      focus(statusEl);
    } catch (err) {
      showAlert(alertEl, `${failed}: ${err.message}`);
    }
  });
}

$("#export-data").addEventListener("click", exportData);
confirmedDelete({
  button: "#delete-voiceprint",
  name: "delete",
  url: section.dataset.voiceprintUrl,
  done: "Your voiceprint was deleted. You can enroll again at any time.",
  failed: "Deletion failed",
});
confirmedDelete({
  button: "#withdraw-consent",
  name: "withdraw",
  url: section.dataset.consentUrl,
  done: "Your consent was withdrawn and your voiceprint deleted.",
  failed: "Withdrawal failed",
});
