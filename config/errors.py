"""Error answers: JSON under the API, HTML pages elsewhere."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIX = "/api/"


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path under the API that names no route (an id that cannot be one, a typo) answers in JSON
    like DRF's own 404s, so API clients never have to parse an HTML page."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the one service failure every REST view shares: the search index out
    of reach answers 503 (retry) instead of 500, wherever it happens."""
    from ingestion.api import IndexDown
    from vectors.index import IndexUnavailable

    if isinstance(exc, IndexUnavailable):
        exc = IndexDown()
    return exception_handler(exc, context)
