"""Pages of the verification app: enrollment, verification and history.

The pages are shells: their ES modules (static/js/) talk to the REST API under /api/v1/. The API
addresses reach the scripts through data- attributes, because the CSP forbids inline script.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

# Template key -> URL name of the API endpoint the page scripts call.
_API_ROUTES = {
    "contract": "feature-contract",
    "voiceprint": "voiceprint",
    "train": "voiceprint-train",
    "score": "voiceprint-score",
    "challenges": "challenge-list",
    "attempts": "attempt-list",
    "consent": "api-consent",
    "export": "api-me-export",
}


def api_urls() -> dict[str, str]:
    return {key: reverse(name) for key, name in _API_ROUTES.items()}


@login_required
def enroll(request):
    return render(request, "verification/enroll.html", {"api": api_urls()})


@login_required
def verify(request):
    return render(request, "verification/verify.html", {"api": api_urls()})


@login_required
def history(request):
    return render(request, "verification/history.html", {"api": api_urls()})
