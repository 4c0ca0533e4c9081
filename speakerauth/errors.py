"""Error pages: API clients get the API's JSON error shape even for URLs no view matched."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for unrouted URLs: ``{"detail", "code"}`` under /api/ (e.g. a malformed id in
    /api/v1/attempts/0.5/), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
