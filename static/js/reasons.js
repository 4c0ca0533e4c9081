// Plain-language wording of the API's decision reasons (VerificationAttempt.reason).

const REASONS = {
  accepted: "Your voice matched.",
  low_score: "The voice did not match the enrolled voiceprint.",
  wrong_content: "The digits heard were not the digits shown.",
  unknown_challenge: "The prompt was not recognised. Start again.",
  foreign_challenge: "The prompt belonged to another session. Start again.",
  session_mismatch: "The prompt belonged to another browser session. Start again.",
  replayed_challenge: "That prompt had already been used. Start again.",
  expired_challenge: "The prompt expired before the answer arrived. Start again and answer a little faster.",
  not_enrolled: "You have no voiceprint yet. Enroll first.",
  locked_out: "Locked after too many failed attempts.",
  voice_disabled: "Voice verification is switched off for this account after too many failures.",
  replay: "The recording looked like a copy of an earlier one.",
  invalid_input: "The recording could not be read.",
};

export function reasonText(reason) {
  return REASONS[reason] || String(reason || "").replaceAll("_", " ");
}
