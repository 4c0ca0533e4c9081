"""Production-mode smoke test: the whole product over HTTP, as it runs on Heroku.

    .venv/bin/python -m ops.smoke

Debug off, ``collectstatic`` (WhiteNoise compressed manifest storage), the release phase
(migrate + install_default_ubm), gunicorn with ``gunicorn.conf.py`` on a free loopback port, and a
throwaway Postgres database (``speakerauth_smoke``) created first and dropped last. HTTPS is
simulated the way the Heroku router does it: every request carries ``X-Forwarded-Proto: https``
(``DJANGO_SECURE_SSL_REDIRECT`` stays on, and a plain request must be redirected).

Flow: liveness and readiness probes -> sign up on the page -> API token -> enroll a real FSDD
speaker from the corpus (``SPEAKERAUTH_CORPUS_DIR``, default ``../shared/data``) -> challenge ->
score held-out recordings of the same speaker (accept) -> the attempt is in the audit log ->
static files (our CSS and JS, Meyda from npm) are served compressed with far-future, immutable
cache headers.

Prints one line per check; exits 1 on any failure and always stops gunicorn.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
import traceback
from typing import Any

from ops.client import Http, fsdd_payloads, give_consent, obtain_token, sign_up
from ops.server import (
    ROOT,
    Gunicorn,
    exit_on_sigterm,
    log,
    production_env,
    release,
    temporary_database,
)
from verification.features import CONTRACT

SPEAKER = "jackson"
ENROLL_INDICES = range(0, 5)  # 5 recordings per digit
HELD_OUT_INDICES = range(25, 50)  # never enrolled; enough that no try repeats a recording
PASSWORD = "smoke-test-passphrase-7!Q"  # noqa: S105 - throwaway account in a throwaway database
ONE_YEAR = 365 * 24 * 3600
_STATIC_REF = re.compile(r'(?:src|href)="(/static/[^"]+)"')


class SmokeFailure(Exception):
    pass


class Checks:
    def __init__(self) -> None:
        self.failures = 0

    def check(self, condition: bool, what: str, detail: str = "") -> bool:
        if condition:
            log(f"  ok    {what}")
        else:
            self.failures += 1
            log(f"  FAIL  {what}{': ' + detail if detail else ''}")
        return condition

    def require(self, condition: bool, what: str, detail: str = "") -> None:
        if not self.check(condition, what, detail):
            raise SmokeFailure(what)


def _short(body: bytes) -> str:
    return body[:300].decode("utf-8", errors="replace")


def check_https_posture(base_url: str, checks: Checks) -> None:
    plain = Http(base_url, forwarded_https=False)
    response = plain.get("/")
    checks.check(
        response.status == 301 and response.headers.get("location", "").startswith("https://"),
        "plain HTTP is redirected to HTTPS (SECURE_SSL_REDIRECT on)",
        f"{response.status} {response.headers.get('location')}",
    )
    secure = Http(base_url)
    response = secure.get("/api/v1/feature-contract/")
    checks.require(
        response.status == 200, "GET /api/v1/feature-contract/ -> 200", _short(response.body)
    )
    contract = response.json()
    checks.check(
        all(contract.get(key) == value for key, value in CONTRACT.items()),
        "feature contract matches verification.features.CONTRACT",
        json.dumps(contract),
    )
    checks.check(
        "max-age=31536000" in response.headers.get("strict-transport-security", ""),
        "HSTS header on HTTPS responses",
        response.headers.get("strict-transport-security", "missing"),
    )
    checks.check(
        len(response.headers.get("x-request-id", "")) >= 8,
        "X-Request-ID on responses (the id of the request's log lines)",
        response.headers.get("x-request-id", "missing"),
    )


def check_probes(base_url: str, checks: Checks) -> None:
    """/healthz and /readyz as a platform's probe sends them: plain HTTP, addressed to the
    machine's own address rather than to a name in DJANGO_ALLOWED_HOSTS."""
    probe = Http(base_url, forwarded_https=False)
    machine = {"Host": "10.0.0.7:8000"}
    response = probe.get("/healthz", headers=machine)
    checks.check(
        response.status == 200, "GET /healthz (plain HTTP, any Host) -> 200", _short(response.body)
    )
    response = probe.get("/readyz", headers=machine)
    checks.check(
        response.status == 200 and response.json().get("status") == "ready",
        "GET /readyz -> 200 ready (database, migrations, background model)",
        _short(response.body),
    )


def enroll(http: Http, payloads: dict[int, list[dict[str, Any]]], checks: Checks) -> None:
    statuses: list[int] = []
    last: Any = None
    for index in range(len(payloads[0])):
        for digit in range(10):
            response = http.post("/api/v1/voiceprint/train/", payloads[digit][index])
            statuses.append(response.status)
            if response.status >= 300:
                checks.require(
                    False,
                    f"POST /api/v1/voiceprint/train/ (digit {digit})",
                    f"{response.status} {_short(response.body)}",
                )
            last = response.json()
    checks.check(
        all(200 <= s < 300 for s in statuses),
        f"enrolled {len(statuses)} utterances of FSDD speaker {SPEAKER!r} (all 2xx)",
    )
    status = http.get("/api/v1/voiceprint/")
    checks.require(status.status == 200, "GET /api/v1/voiceprint/ -> 200", _short(status.body))
    body = status.json()
    trained = bool(body.get("trained") or body.get("model"))
    checks.require(trained, "a speaker model is trained", json.dumps(body)[:300] or str(last))


def verify_genuine(
    http: Http, held_out: dict[int, list[dict[str, Any]]], checks: Checks, tries: int = 5
) -> int:
    """Score held-out recordings of the enrolled speaker; return the accepted attempt's id.

    The prompted digits are random, so each try uses different recordings; the engine has a small
    false-reject rate, hence a bounded number of fresh challenges (each printed).
    """
    used = dict.fromkeys(range(10), 0)
    for attempt in range(1, tries + 1):
        response = http.post("/api/v1/challenges/", {})
        checks.require(
            response.status == 201, "POST /api/v1/challenges/ -> 201", _short(response.body)
        )
        challenge = response.json()
        utterances = []
        for digit in challenge["digits"]:
            utterances.append(held_out[digit][used[digit] % len(held_out[digit])])
            used[digit] += 1
        response = http.post(
            "/api/v1/voiceprint/score/",
            {"challenge": challenge["id"], "utterances": utterances},
        )
        checks.require(
            response.status == 200, "POST /api/v1/voiceprint/score/ -> 200", _short(response.body)
        )
        verdict = response.json()
        digits = "".join(str(d) for d in challenge["digits"])
        log(
            f"        try {attempt}: prompted {digits} -> {verdict['decision']} "
            f"({verdict.get('reason')}, attempt {verdict.get('attempt')}, "
            f"{response.elapsed * 1000:.1f} ms)"
        )
        if verdict["decision"] == "accept":
            checks.check(True, f"genuine attempt accepted (try {attempt} of {tries})")
            return int(verdict["attempt"])
    checks.require(False, f"genuine attempt accepted within {tries} fresh challenges")
    raise AssertionError("unreachable")


def check_audit(http: Http, attempt_id: int, checks: Checks) -> None:
    response = http.get("/api/v1/attempts/")
    checks.require(response.status == 200, "GET /api/v1/attempts/ -> 200", _short(response.body))
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    row = next((r for r in rows if r.get("id") == attempt_id), None)
    checks.require(row is not None, f"audit row for attempt {attempt_id} listed", str(rows)[:300])
    checks.check(
        row.get("decision") == "accept", "audit row records the accept", json.dumps(row)[:300]
    )


def static_urls_from_pages(http: Http) -> set[str]:
    urls: set[str] = set()
    for path in ("/", "/accounts/login/", "/enroll/", "/verify/", "/history/"):
        response = http.get(path, headers={"Accept": "text/html"})
        if response.status == 200:
            urls.update(_STATIC_REF.findall(response.text()))
    return urls


def static_urls_from_manifest() -> dict[str, str]:
    manifest = json.loads((ROOT / "staticfiles" / "staticfiles.json").read_text())
    return {name: f"/static/{hashed}" for name, hashed in manifest["paths"].items()}


def check_static(http: Http, checks: Checks) -> None:
    manifest = static_urls_from_manifest()
    on_pages = static_urls_from_pages(http)
    wanted = {"css/site.css", "vendor/meyda/meyda.min.js"} | {
        name for name in manifest if name.startswith("js/") and name.endswith(".js")
    }
    missing = sorted(name for name in wanted if name not in manifest)
    checks.check(not missing, "collectstatic manifest has our CSS, our JS and Meyda", str(missing))
    hashed_urls = {manifest[name] for name in wanted if name in manifest}
    checks.check(
        {manifest["css/site.css"]} <= on_pages,
        "pages link the hashed CSS file",
        f"found {sorted(on_pages)}",
    )
    page_js = {u for u in on_pages if u.endswith(".js")}
    checks.check(
        page_js <= set(manifest.values()),
        f"pages reference only hashed JS ({len(page_js)} script(s))",
        str(sorted(page_js - set(manifest.values()))),
    )
    for url in sorted(hashed_urls | {u for u in on_pages if u in manifest.values()}):
        response = http.get(url, headers={"Accept": "*/*", "Accept-Encoding": "gzip, br"})
        cache = response.headers.get("cache-control", "")
        max_age = re.search(r"max-age=(\d+)", cache)
        ok = (
            response.status == 200
            and max_age is not None
            and int(max_age.group(1)) >= ONE_YEAR
            and "immutable" in cache
        )
        checks.check(
            ok,
            f"{url} -> {response.status}, {cache or 'no Cache-Control'}, "
            f"{response.headers.get('content-encoding', 'identity')}, {len(response.body)} B",
        )
    check_module_references(http, manifest, checks)


_MODULE_REF = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*|new URL\(\s*)["'](\.{1,2}/[^"']+)["']"""
)


def check_module_references(http: Http, manifest: dict[str, str], checks: Checks) -> None:
    """A hashed module must import hashed modules only: an unhashed name would be cached for a
    short time and could pair an old module with a new one after a deploy."""
    hashed = set(manifest.values())
    unhashed: list[str] = []
    n_refs = 0
    for name, url in sorted(manifest.items()):
        if not (name.startswith("js/") and name.endswith(".js")):
            continue
        body = http.get(url, headers={"Accept": "*/*"}).text()
        base = url.rsplit("/", 1)[0]
        for ref in _MODULE_REF.findall(body):
            n_refs += 1
            target = posixpath.normpath(f"{base}/{ref}")
            if target not in hashed:
                unhashed.append(f"{url} -> {ref}")
    checks.check(
        n_refs > 0 and not unhashed,
        f"ES-module imports and the worklet URL point at hashed files ({n_refs} references)",
        "; ".join(unhashed),
    )


def run(base_url: str, checks: Checks) -> None:
    log("checks:")
    check_https_posture(base_url, checks)
    check_probes(base_url, checks)

    http = Http(base_url)
    response = sign_up(http, "smoke", PASSWORD)
    checks.require(
        response.status == 302, "sign up on /accounts/signup/ -> 302", _short(response.body)
    )
    token = obtain_token(Http(base_url), "smoke", PASSWORD)
    checks.check(bool(token), "POST /api/v1/auth/token/ -> token")
    api = Http(base_url, token=token)
    version = give_consent(api)
    checks.check(True, f"voice consent {version} given through POST /api/v1/consent/")

    log(f"  ..    computing features of FSDD speaker {SPEAKER!r} (the browser's Meyda port)")
    enrollment = fsdd_payloads(SPEAKER, ENROLL_INDICES)
    held_out = fsdd_payloads(SPEAKER, HELD_OUT_INDICES)
    enroll(api, enrollment, checks)
    attempt_id = verify_genuine(api, held_out, checks)
    check_audit(api, attempt_id, checks)
    check_static(http, checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="speakerauth_smoke", help="throwaway database name")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    checks = Checks()
    log(f"smoke: production mode, database {args.database}")
    try:
        with temporary_database(args.database) as db_url:
            env = production_env(db_url)
            release(env)
            with Gunicorn(env, workers=2) as server:
                try:
                    run(server.base_url, checks)
                finally:
                    server_log = server.log_text()
                    checks.check(
                        "Traceback" not in server_log,
                        "no traceback in the gunicorn log",
                        server.tail(),
                    )
    except SmokeFailure:
        pass
    except Exception:
        checks.failures += 1
        log("  FAIL  unexpected error:\n" + traceback.format_exc())
    if checks.failures:
        log(f"smoke: FAILED ({checks.failures} failing check(s))")
        return 1
    log("smoke: PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
