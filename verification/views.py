"""Pages of the verification app: enrollment, verification and history.

The pages are shells: their ES modules (static/js/) talk to the REST API under /api/v1/. The API
addresses reach the scripts through data- attributes, because the CSP forbids inline script.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

API_ROOT = "/api/v1/"


def _api_urls() -> dict[str, str]:
    return {
        "contract": f"{API_ROOT}feature-contract/",
        "voiceprint": f"{API_ROOT}voiceprint/",
        "train": f"{API_ROOT}voiceprint/train/",
        "score": f"{API_ROOT}voiceprint/score/",
        "challenges": f"{API_ROOT}challenges/",
        "attempts": f"{API_ROOT}attempts/",
        "consent": f"{API_ROOT}consent/",
    }


@login_required
def enroll(request):
    return render(request, "verification/enroll.html", {"api": _api_urls()})


@login_required
def verify(request):
    return render(request, "verification/verify.html", {"api": _api_urls()})


@login_required
def history(request):
    return render(request, "verification/history.html", {"api": _api_urls()})
