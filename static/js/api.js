// Calls to the SpeakerAuth REST API from the pages: JSON in and out, session cookie + CSRF header.
// The CSRF token comes from the page's data-csrf attribute (the CSP forbids inline script), falling back
// to Django's csrftoken cookie.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(describe(status, body));
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter; // seconds, or null
  }
}

function csrfToken() {
  const holder = document.querySelector("[data-csrf]");
  if (holder && holder.dataset.csrf) return holder.dataset.csrf;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** The first human-readable message in a DRF error body ({"detail": ...} or {"field": [...]}). */
export function firstMessage(body) {
  if (body == null) return "";
  if (typeof body === "string") return body;
  if (Array.isArray(body)) return body.length ? firstMessage(body[0]) : "";
  if (typeof body === "object") {
    // SpeakerAuth's error body: {"detail": "...", "code": "...", "field": "utterances[2].rms"}
    if (typeof body.detail === "string" && typeof body.field === "string") {
      return `${body.field}: ${body.detail}`;
    }
    for (const key of ["detail", "message", "error", "non_field_errors"]) {
      if (key in body) return firstMessage(body[key]);
    }
    for (const [key, value] of Object.entries(body)) {
      const text = firstMessage(value);
      if (text) return `${key}: ${text}`;
    }
  }
  return "";
}

function describe(status, body) {
  const detail = firstMessage(body);
  if (status === 0) return "Could not reach the server. Check your connection and try again.";
  if (status === 401) return "Your session has ended. Log in again to continue.";
  if (status === 413) return "The recording was too large to send. Try a shorter take.";
  if (body && body.code === "no_background_model") {
    return "Voice enrollment is not set up on this server yet (no background model). Tell the site admin.";
  }
  if (status >= 500) return "The server had a problem. Please try again in a moment.";
  return detail || `The request failed (HTTP ${status}).`;
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds));
  const when = Date.parse(value);
  return Number.isFinite(when) ? Math.max(0, Math.round((when - Date.now()) / 1000)) : null;
}

/** fetch() a JSON endpoint; resolves with the decoded body, rejects with ApiError. */
export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, null, null);
  }
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (response.status !== 204 && type.includes("json")) {
    data = await response.json().catch(() => null);
  }
  if (!response.ok) {
    throw new ApiError(response.status, data, parseRetryAfter(response.headers.get("Retry-After")));
  }
  return data;
}
