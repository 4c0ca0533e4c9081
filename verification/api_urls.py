"""API routes of the verification app (mounted under /api/v1/)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from verification import api

router = SimpleRouter()
router.register("challenges", api.ChallengeViewSet, basename="challenge")
router.register("attempts", api.AttemptViewSet, basename="attempt")

voiceprint = api.SingletonRouter()
voiceprint.register("voiceprint", api.VoiceprintViewSet, basename="voiceprint")

urlpatterns = [
    path("feature-contract/", api.FeatureContractView.as_view(), name="feature-contract"),
    path("", include(voiceprint.urls)),
    path("", include(router.urls)),
]
