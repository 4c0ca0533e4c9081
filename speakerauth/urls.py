"""Top-level URL map: pages, accounts, the v1 API and its documentation."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as account_views
from verification import legacy

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("", include("verification.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("verification.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # The seed's curl verbs (PUT /train, /test, /score), token or basic auth.
    path("train", legacy.TrainView.as_view(), name="legacy-train"),
    path("test", legacy.TestView.as_view(), name="legacy-test"),
    path("score", legacy.ScoreView.as_view(), name="legacy-score"),
]

handler404 = "speakerauth.errors.not_found"
