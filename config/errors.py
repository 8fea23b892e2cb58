"""Error answers: JSON under the API, styled HTML pages elsewhere (templates/400, 403, 404, 500)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIX = "/api/"


def api_error_detail(status: int) -> str:
    """The words of an API error that carries no reason of its own, in DRF's wording."""
    known = {
        400: "Bad request.",
        403: PermissionDenied.default_detail,
        404: NotFound.default_detail,
        500: APIException.default_detail,
    }
    if status in known:
        return str(known[status])
    try:
        return f"{HTTPStatus(status).phrase.capitalize()}."
    except ValueError:
        return "Error."


class ApiErrorsAsJson:
    """Every error under /api/ is JSON `{"detail": ...}`, in every mode: the paths no route names, the
    exceptions no view handled and the refusals Django makes before a view runs (a foreign Host) would
    otherwise answer an HTML page, and with DEBUG on one listing the URL patterns, the traceback and
    the settings. Placed first in MIDDLEWARE, it sees the answer of everything below it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return JsonResponse({"detail": api_error_detail(response.status_code)}, status=response.status_code)
        return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with one wording for every missing or foreign object (the lookups' own messages
    differ, and DRF's names the model class), and the one service failure every REST view shares: the
    search index out of reach answers 503 (retry) instead of 500, wherever it happens."""
    from ingestion.api import IndexDown
    from vectors.index import IndexLocked, IndexUnavailable

    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, IndexLocked):
        exc = IndexDown(detail=str(exc))  # retrying will not help: say what will
    elif isinstance(exc, IndexUnavailable):
        exc = IndexDown()
    return exception_handler(exc, context)
