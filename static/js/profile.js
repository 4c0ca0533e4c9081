// Account page, "Your voice data": export everything as JSON, delete the voiceprint, withdraw consent
// (each destructive action behind an inline confirmation).
import { api } from "./api.js";
import { $, announce, focus, show, showAlert } from "./ui.js";

const section = $("#voice-data");
const statusEl = $("#voice-status");
const alertEl = $("#voice-alert");
const confirmBox = $("#delete-confirm");
const deleteButton = $("#delete-voiceprint");

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

function askDelete() {
  show(confirmBox, true);
  deleteButton.setAttribute("aria-expanded", "true");
  focus($("#delete-confirm-title"));
}

function keep() {
  show(confirmBox, false);
  deleteButton.setAttribute("aria-expanded", "false");
  focus(deleteButton);
}

async function reallyDelete() {
  showAlert(alertEl, "");
  try {
    await api(section.dataset.voiceprintUrl, { method: "DELETE" });
    show(confirmBox, false);
    section.dataset.deleted = "true";
    announce(statusEl, "Your voiceprint was deleted. You can enroll again at any time.");
    focus(statusEl);
  } catch (err) {
    showAlert(alertEl, `Deletion failed: ${err.message}`);
  }
}

const withdrawButton = $("#withdraw-consent");
const withdrawBox = $("#withdraw-confirm");

function askWithdraw() {
  show(withdrawBox, true);
  withdrawButton.setAttribute("aria-expanded", "true");
  focus($("#withdraw-confirm-title"));
}

function keepConsent() {
  show(withdrawBox, false);
  withdrawButton.setAttribute("aria-expanded", "false");
  focus(withdrawButton);
}

async function reallyWithdraw() {
  showAlert(alertEl, "");
  try {
    await api(section.dataset.consentUrl, { method: "DELETE" });
    show(withdrawBox, false);
    section.dataset.deleted = "true";
    announce(statusEl, "Your consent was withdrawn and your voiceprint deleted.");
    focus(statusEl);
  } catch (err) {
    showAlert(alertEl, `Withdrawal failed: ${err.message}`);
  }
}

withdrawButton.setAttribute("aria-controls", "withdraw-confirm");
withdrawButton.setAttribute("aria-expanded", "false");
withdrawButton.addEventListener("click", askWithdraw);
$("#withdraw-no").addEventListener("click", keepConsent);
$("#withdraw-yes").addEventListener("click", reallyWithdraw);
deleteButton.setAttribute("aria-controls", "delete-confirm");
deleteButton.setAttribute("aria-expanded", "false");
$("#export-data").addEventListener("click", exportData);
deleteButton.addEventListener("click", askDelete);
$("#delete-no").addEventListener("click", keep);
$("#delete-yes").addEventListener("click", reallyDelete);
