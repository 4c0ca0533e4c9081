"""The staff dashboard in real Chromium: Chart.js (from npm) draws all four charts under the
strict CSP, with no console error and no CSP violation. Skips locally without chromium or
node_modules; fails when ``CI`` is set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from verification import services
from verification.models import Decision, Reason
from verification.tests.availability import require

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
CHROMIUM = Path(os.environ.get("SPEAKERAUTH_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery staple"
DASHBOARD = "/admin/verification/verificationattempt/dashboard/"


def _traffic(staff) -> None:
    user = UserFactory(username="carol")
    rng = np.random.default_rng(7)
    for truth, centre in (("genuine", 1.0), ("impostor", -1.0)):
        for score in rng.normal(centre, 0.6, 25):
            accepted = score >= 0.0
            attempt = services.verification_attempt_create(
                user=user,
                decision=Decision.ACCEPT if accepted else Decision.REJECT,
                reason=Reason.ACCEPTED if accepted else Reason.LOW_SCORE,
                client=services.ClientInfo(ip="192.0.2.1"),
                score=float(score),
                threshold=0.0,
            )
            services.attempt_label_set(attempt=attempt, truth=truth, actor=staff)


def test_dashboard_draws_every_chart_under_the_csp(live_server):
    require(CHROMIUM.is_file(), f"{CHROMIUM} is not installed")
    vendor = Path(settings.BASE_DIR) / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
    require(vendor.is_file(), "node_modules/chart.js is missing (run npm ci)")
    from playwright.sync_api import sync_playwright

    staff = UserFactory(username="sam", password=PASSWORD, is_staff=True, is_superuser=True)
    _traffic(staff)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and "favicon" not in (m.location or {}).get("url", "")
                and problems.append(m.text)
            ),
        )
        page.goto(f"{live_server.url}/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", "sam")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"**{DASHBOARD}")
        page.wait_for_load_state("networkidle")
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas')]"
            ".filter(c => window.Chart && window.Chart.getChart(c)).length"
        )
        eer = page.text_content("#fact-eer")
        browser.close()
    assert problems == []
    assert drawn == 4
    assert "%" in eer
