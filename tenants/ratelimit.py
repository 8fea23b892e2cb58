"""Failed logins and failed token checks, counted per client address in the cache (Redis in the
full stack): past the limit, further attempts are refused until the window has passed, even with
the right password."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def _key(scope: str, request: HttpRequest) -> str:
    return f"ratelimit:{scope}:{client_address(request)}"


def is_blocked(scope: str, request: HttpRequest) -> bool:
    return int(cache.get(_key(scope, request), 0)) >= settings.AUTH_FAILURE_LIMIT


def record_failure(scope: str, request: HttpRequest) -> None:
    key = _key(scope, request)
    if cache.add(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS)


def reset(scope: str, request: HttpRequest) -> None:
    cache.delete(_key(scope, request))
