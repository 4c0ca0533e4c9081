"""Account pages: home, sign-up, profile (API token revocation included). Login, logout and
passwords are django.contrib.auth's."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from accounts.deletion import account_delete
from accounts.forms import AccountDeleteForm, SignUpForm


def home(request):
    return render(request, "home.html")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    if not settings.ACCOUNTS_SIGNUP_OPEN:
        return render(request, "registration/signup_closed.html", status=403)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("profile")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def profile(request):
    api_token = Token.objects.filter(user=request.user).only("created").first()
    return render(request, "accounts/profile.html", {"api_token": api_token})


@require_POST
@login_required
def api_token_revoke(request):
    if request.user.api_token_revoke():
        messages.success(request, "Your API token is revoked: scripts using it must sign in again.")
    return redirect("profile")


@require_http_methods(["GET", "POST"])
@login_required
def account_delete_view(request):
    form = AccountDeleteForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        account_delete(user=request.user)
        logout(request)
        messages.success(request, "Your account is deleted, with your voiceprint.")
        return redirect("home")
    return render(request, "accounts/delete.html", {"form": form})
