"""Pages of the verification app: enrollment, verification and history."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def enroll(request):
    return render(request, "verification/enroll.html")


@login_required
def verify(request):
    return render(request, "verification/verify.html")


@login_required
def history(request):
    return render(request, "verification/history.html")
