"""Template context of every page."""

from django.conf import settings


def signup_open(request) -> dict[str, bool]:
    """Whether to link to the sign-up page (ACCOUNTS_SIGNUP_OPEN)."""
    return {"signup_open": settings.ACCOUNTS_SIGNUP_OPEN}
