"""The broker's Redis, for what the pipeline keeps beside the queues: the one module that imports
redis (ruff's TID251 says so). Web processes and workers share the broker by construction, which
is why these flags live there rather than in Django's cache."""

from __future__ import annotations

import logging

import redis
from celery import current_app

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}


def _client() -> redis.Redis | None:
    """None where tasks do not go through a Redis broker (the in-process runners, another broker)."""
    url = current_app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[url]


def flag_set(key: str, *, seconds: int) -> bool | None:
    """Sets `key` for `seconds` unless it is set: True when this call set it, False when it was set
    already, None when there is no Redis broker or it cannot be reached."""
    client = _client()
    if client is None:
        return None
    try:
        return bool(client.set(key, 1, nx=True, ex=seconds))
    except redis.RedisError:
        logger.warning("Could not reach the broker's Redis to set %s", key, exc_info=True)
        return None


def flag_clear(key: str) -> None:
    client = _client()
    if client is not None:
        try:
            client.delete(key)
        except redis.RedisError:  # the flag expires by itself
            logger.warning("Could not reach the broker's Redis to clear %s", key, exc_info=True)
