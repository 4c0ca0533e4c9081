"""API routes of the verification app (mounted under /api/v1/)."""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from verification import api

router = SimpleRouter()
router.register("challenges", api.ChallengeViewSet, basename="challenge")
router.register("attempts", api.AttemptViewSet, basename="attempt")

voiceprint = api.SingletonRouter()
voiceprint.register("voiceprint", api.VoiceprintViewSet, basename="voiceprint")


def _without_slash(route: str, view, actions: dict[str, str]):
    """The same endpoint without its trailing slash, for POST/PUT from curl: APPEND_SLASH cannot
    redirect a body (Django raises a 500 under DEBUG, and a 301 drops the body). Undocumented
    (``schema=None``) and unnamed, so the schema and ``reverse`` keep the canonical address."""
    return re_path(rf"^{route}$", view.as_view(actions, schema=None))


urlpatterns = [
    path("feature-contract/", api.FeatureContractView.as_view(), name="feature-contract"),
    path("", include(voiceprint.urls)),
    path("", include(router.urls)),
    *(
        _without_slash(f"voiceprint/{verb}", api.VoiceprintViewSet, {"post": verb, "put": verb})
        for verb in ("train", "test", "score")
    ),
    _without_slash("challenges", api.ChallengeViewSet, {"post": "create"}),
]
