"""Every page under the Content-Security-Policy, in real Chromium: the browser reports no
violation (a blocked inline script, a CDN script or style) and the pages still work, including
the API docs (Swagger UI from npm, initialised by a same-origin script) and the admin.

Uses the e2e fixtures (``chromium``, ``live_server``); violations are collected with the
``securitypolicyviolation`` DOM event, which the browser fires for everything it blocks.
"""

from __future__ import annotations

import re

import pytest

from accounts.tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # UserFactory's
COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${where})`);
});
"""
# DRF's browsable API templates carry a few inline style attributes and a pygments <style>:
# the CSP blocks them (cosmetic: the page works, all its scripts are same-origin files), and we
# keep the CSP rather than copy DRF's templates. Nothing else is tolerated, anywhere.
STYLE_ONLY = {"/api/v1/voiceprint/"}
PAGES = [
    ("/", "main"),
    ("/accounts/profile/", "main"),
    ("/accounts/profile/delete/", "form.stacked"),
    ("/enroll/", "main"),
    ("/verify/", "main"),
    ("/history/", "main"),
    ("/api/docs/", ".swagger-ui .info"),
    ("/api/v1/voiceprint/", ".response-info"),
    ("/admin/", "#content"),
    ("/admin/verification/verificationattempt/", "#result_list, #changelist"),
    ("/admin/verification/verificationattempt/dashboard/", "canvas"),
    ("/admin/axes/accessattempt/", "#changelist"),
]


@pytest.fixture
def staff_page(chromium, live_server):
    UserFactory(username="csp_staff", password=PASSWORD, is_staff=True, is_superuser=True)
    context = chromium.new_context(base_url=live_server.url)
    context.add_init_script(script=COLLECT_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("csp_staff")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    yield page
    context.close()


def test_no_page_triggers_a_csp_violation(staff_page):
    found = {}
    for path, ready in PAGES:
        response = staff_page.goto(path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        staff_page.wait_for_selector(ready, state="attached")
        staff_page.wait_for_load_state("networkidle")
        violations = staff_page.evaluate("window.__csp")
        if path in STYLE_ONLY:
            violations = [v for v in violations if not v.startswith("style-src")]
        if violations:
            found[path] = violations
    assert found == {}


def test_api_docs_render_the_operations(staff_page):
    staff_page.goto("/api/docs/")
    staff_page.wait_for_selector(".opblock-summary-path", state="attached")
    paths = staff_page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/voiceprint/score/" in p for p in paths)
    assert staff_page.evaluate("window.__csp") == []
