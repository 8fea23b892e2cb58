"""Typed readers for settings that come from the environment.

Each helper fails loudly on a value it cannot parse: a typo in a deployment's
environment must stop the process, not silently pick a default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_required(name: str) -> str:
    value = env_str(name)
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} must be set.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} is below the minimum {minimum}.")
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(name, default).strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r}; use one of {', '.join(choices)}.")
    return value


RATE_PERIODS = ("second", "minute", "hour", "day")


def env_rate(name: str, default: str) -> str:
    """A request rate such as `1200/minute` (a positive count per second, minute, hour or day)."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in RATE_PERIODS:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate; write it as COUNT/PERIOD, e.g. 1200/minute.")
    return value


def env_json_object(name: str) -> dict[str, str]:
    """A JSON object of strings, e.g. CHROMA_HEADERS='{"Authorization": "Bearer ..."}'; empty when unset."""
    raw = env_str(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ImproperlyConfigured(f'{name} must be a JSON object of strings, e.g. {{"X-Header": "value"}}.')
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name)
    return Path(raw).expanduser().resolve() if raw else default


def database_from_url(url: str) -> dict[str, Any]:
    """Turn `postgres://user:pass@host:5432/name` or `sqlite:///path` into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path.db and sqlite:////absolute/path.db, as in dj-database-url.
        name = unquote(url.removeprefix("sqlite://").removeprefix("/")) or ":memory:"
        # The single-process default writes from requests, the background embedder and CLI commands at
        # once: WAL lets readers go on during a write, IMMEDIATE transactions queue writers instead of
        # failing them with "database is locked".
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL {url!r} names no database.")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgres:// or sqlite://.")


# scheme -> (TLS mode, default port); `smtp+tls` upgrades with STARTTLS, `smtps` speaks TLS from the start.
_SMTP_SCHEMES = {
    "smtp": ("", 25),
    "smtp+tls": ("starttls", 587),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("ssl", 465),
}


def email_from_url(url: str, *, default_file_path: Path) -> dict[str, Any]:
    """Turn EMAIL_URL into Django's EMAIL_* settings (every one of them, whatever the scheme):
    `smtp://user:pass@host:port`, `smtp+tls://…` (STARTTLS), `smtps://…` (TLS from the start),
    `file:///path` (one file per message), `console:`; empty writes files under `default_file_path`.
    The user and password may be %-encoded; `?timeout=SECONDS` (default 10) bounds how long a
    request waits for the mail server."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    found: dict[str, Any] = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": default_file_path,
        "EMAIL_HOST": "localhost",
        "EMAIL_PORT": 25,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 10.0,
    }
    if not url:
        return found
    if scheme == "file":
        return found | {"EMAIL_FILE_PATH": Path(unquote(parts.path)) if parts.path else default_file_path}
    if scheme == "console":
        return found | {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme not in _SMTP_SCHEMES:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme {parts.scheme!r} is not supported; "
            "use smtp://, smtp+tls://, smtps://, file:// or console:."
        )
    if not parts.hostname:
        raise ImproperlyConfigured(f"EMAIL_URL {parts.scheme}://… names no host.")
    tls, default_port = _SMTP_SCHEMES[scheme]
    options = dict(item.partition("=")[::2] for item in parts.query.split("&") if item)
    unknown = set(options) - {"timeout"}
    if unknown:
        raise ImproperlyConfigured(f"EMAIL_URL has unknown options {sorted(unknown)}; only timeout= is known.")
    try:
        port = parts.port or default_port
        timeout = float(options.get("timeout", "10"))
    except ValueError:
        raise ImproperlyConfigured("EMAIL_URL has a port or timeout that is not a number.") from None
    return found | {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": tls == "starttls",
        "EMAIL_USE_SSL": tls == "ssl",
        "EMAIL_TIMEOUT": timeout,
    }
