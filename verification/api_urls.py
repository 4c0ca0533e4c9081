"""API routes of the verification app (filled by the REST API issue)."""

urlpatterns: list = []
