from django.urls import path, re_path

from accounts import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.me, name="api-me"),
    path("me/export/", api.me_export, name="api-me-export"),
    path("consent/", api.voice_consent, name="api-consent"),
    # POST from curl without the trailing slash: APPEND_SLASH cannot redirect a body (a 500 under
    # DEBUG, a body-dropping 301 in production). Unnamed and undocumented (schema=None).
    re_path(r"^consent$", api.voice_consent.cls.as_view(schema=None)),
]
