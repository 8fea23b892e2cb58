"""Failed logins and failed token checks, counted per client address in the cache (Redis in the
full stack): past the limit, further attempts are refused until the window has passed, even with
the right password.

When the cache cannot be reached the limiter steps aside (logged) rather than turning every login
and API call into a server error: authentication itself still checks every password and key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _tolerant(operation: Callable[[], T], fallback: T) -> T:
    try:
        return operation()
    except Exception:  # redis.ConnectionError, TimeoutError...: whatever the cache backend raises
        logger.warning("The rate limiter's cache cannot be reached; not counting this attempt", exc_info=True)
        return fallback


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def _key(scope: str, request: HttpRequest) -> str:
    return f"ratelimit:{scope}:{client_address(request)}"


def is_blocked(scope: str, request: HttpRequest) -> bool:
    failures = _tolerant(lambda: int(cache.get(_key(scope, request), 0)), 0)
    return failures >= settings.AUTH_FAILURE_LIMIT


def record_failure(scope: str, request: HttpRequest) -> None:
    _tolerant(lambda: _count(_key(scope, request)), None)


def _count(key: str) -> None:
    if cache.add(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS)


def reset(scope: str, request: HttpRequest) -> None:
    _tolerant(lambda: cache.delete(_key(scope, request)), None)
