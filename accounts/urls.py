from django.urls import include, path

from accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("profile/", views.profile, name="profile"),
    path("profile/api-token/revoke/", views.api_token_revoke, name="api-token-revoke"),
    path("profile/delete/", views.account_delete_view, name="account-delete"),
    path("", include("django.contrib.auth.urls")),
]
