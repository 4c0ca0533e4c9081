"""Capture docs/screenshots/dashboard.png: the staff dashboard of a freshly seeded demo.

A throwaway SQLite database is migrated, given the background model and seeded with real
verification traffic (``seed_demo``); the dev server serves it and headless Chromium (Playwright,
Debian's /usr/bin/chromium) logs in as the demo admin and photographs the dashboard. Fails if
the page logs a console error (e.g. a CSP violation) or a chart did not draw.

    .venv/bin/python tools/capture_dashboard.py [--ubm verification/data/default_ubm.npz]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-dashboard-only"  # noqa: S105 - throwaway database, deleted afterwards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def _wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ubm", default=str(ROOT / "verification/data/default_ubm.npz"))
    parser.add_argument("--out", default=str(ROOT / "docs/screenshots/dashboard.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite3",
            "DJANGO_DEBUG": "true",
        }
        _manage(env, "migrate", "--noinput", "-v0")
        _manage(env, "install_default_ubm", "--path", args.ubm)
        _manage(env, "seed_demo", "--admin-password", PASSWORD)
        _manage(env, "verify_audit")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
        )
        try:
            _wait_for(f"{base}/admin/login/")
            _shoot(base, args)
        finally:
            server.terminate()
            server.wait(timeout=10)


def _shoot(base: str, args) -> None:
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Resource failures are checked by URL below (a missing favicon is no failure).
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")
                and errors.append(m.text)
            ),
        )
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and not r.url.endswith("/favicon.ico")
                and errors.append(f"{r.status} {r.url}")
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/admin/login/?next=/admin/verification/verificationattempt/dashboard/")
        page.fill("#id_username", "demo_admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/dashboard/")
        page.wait_for_load_state("networkidle")
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas')]"
            ".filter(c => window.Chart.getChart(c)).length"
        )
        if errors or drawn != 4:
            raise SystemExit(f"dashboard broken: {drawn} charts drawn, errors: {errors}")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
