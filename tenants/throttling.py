"""Request rates of the REST API: per API key (`API_RATE_LIMIT`) and per tenant, all its keys
together (`API_TENANT_RATE_LIMIT`). DRF throttles counting in the shared cache (Redis in the full
stack, so every web process counts together), as a sliding window: this window's count plus the
previous window's, weighted by how much of it still overlaps the last `period` seconds. Counting is
one atomic increment per request, so concurrent requests never overrun a limit together.

A request costs what its view says (`throttle_cost`, at least 1): an upload costs one per file.
A refused request is not counted, so a key held back does not use up its tenant's budget, and one
key's flood slows neither the tenant's other keys (until the tenant's own limit) nor other tenants.
With the cache out of reach the throttles step aside (logged), as the login limiter does."""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/minute' -> (1200, 60). The settings check the form at startup (config.env.env_rate)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period]


class SlidingWindowThrottle(BaseThrottle):
    """One limit on one identity; subclasses say which setting and whose requests."""

    setting = ""
    label = ""

    def __init__(self) -> None:
        self.counted: tuple[str, int] | None = None
        self.retry_after: float | None = None

    @property
    def rate(self) -> str:
        return str(getattr(settings, self.setting))

    def identity(self, request: Request, view: APIView) -> str:
        raise NotImplementedError

    def refusal(self, request: Request, view: APIView) -> str:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        limit, period = parse_rate(self.rate)
        cost = max(1, int(getattr(view, "throttle_cost", lambda request: 1)(request)))
        now = time.time()
        window = int(now // period)
        elapsed = now - window * period
        key = f"throttle:{self.label}:{self.identity(request, view)}:{period}"
        current_key, previous_key = f"{key}:{window}", f"{key}:{window - 1}"
        try:
            cache.add(current_key, 0, timeout=2 * period + 1)
            count = int(cache.incr(current_key, cost))
            previous = int(cache.get(previous_key) or 0)
        except Exception:  # redis.ConnectionError, TimeoutError...: whatever the cache backend raises
            logger.warning("The API rate limiter's cache cannot be reached; not counting this request", exc_info=True)
            return True
        if previous * (1 - elapsed / period) + count <= limit:
            self.counted = (current_key, cost)
            return True
        self._uncount(current_key, cost)
        self.retry_after = self._wait(limit, period, elapsed, previous, count - cost, cost)
        return False

    @staticmethod
    def _wait(limit: int, period: int, elapsed: float, previous: int, others: int, cost: int) -> float:
        """Seconds until this request would fit: within this window once enough of the previous one
        has slid out, else in the next window once enough of this one has."""
        if others + cost <= limit and previous:
            return max(1.0, period * (1 - (limit - others - cost) / previous) - elapsed)
        if cost > limit or not others:
            return float(period - elapsed)
        return (period - elapsed) + max(0.0, period * (1 - (limit - cost) / others))

    def undo(self) -> None:
        """Takes back this request's count: a later throttle refused it."""
        if self.counted is not None:
            self._uncount(*self.counted)
            self.counted = None

    @staticmethod
    def _uncount(key: str, cost: int) -> None:
        try:
            cache.decr(key, cost)
        except Exception:  # expired meanwhile, or the cache is gone: nothing left to take back
            logger.debug("Could not take back a throttle count", exc_info=True)

    def wait(self) -> float | None:
        return None if self.retry_after is None else float(math.ceil(self.retry_after))


class ApiKeyRateThrottle(SlidingWindowThrottle):
    setting = "API_RATE_LIMIT"
    label = "key"

    def identity(self, request: Request, view: APIView) -> str:
        return str(view.api_token.pk)  # type: ignore[attr-defined]

    def refusal(self, request: Request, view: APIView) -> str:
        return f"This API key's rate limit ({self.rate}, API_RATE_LIMIT) is used up."


class TenantRateThrottle(SlidingWindowThrottle):
    setting = "API_TENANT_RATE_LIMIT"
    label = "tenant"

    def identity(self, request: Request, view: APIView) -> str:
        return str(view.tenant.pk)  # type: ignore[attr-defined]

    def refusal(self, request: Request, view: APIView) -> str:
        return f"This tenant's rate limit for all its API keys ({self.rate}, API_TENANT_RATE_LIMIT) is used up."
