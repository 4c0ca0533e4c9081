from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.me, name="api-me"),
    path("me/export/", api.me_export, name="api-me-export"),
    path("consent/", api.voice_consent, name="api-consent"),
]
