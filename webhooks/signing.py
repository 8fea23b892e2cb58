"""Standard Webhooks (standardwebhooks.com) signatures: a secret `whsec_<base64 key>`; each
delivery carries `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature: v1,<base64 of
HMAC-SHA256 over "<id>.<timestamp>.<body>">` keyed by the decoded key.

Every delivery is signed, so the secret is kept; it is kept sealed (Fernet, from `cryptography`:
AES with an HMAC, under a key derived from SECRET_KEY), so a copy of the database (a backup, a
replica, a leaked dump) without that key signs nothing. It protects no more than SECRET_KEY does:
the development default is public, and resealing changes the key, not the secret (after a key
leak, endpoints are registered again for new secrets). After SECRET_KEY changes, secrets sealed
under a key in SECRET_KEY_FALLBACKS are still read (and `manage.py reseal_webhook_secrets` seals
them again under the current key, before the old one is dropped)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
KEY_BYTES = 32  # the spec asks for 24 to 64 random bytes
_SEAL_SALT = "webhooks.signing.seal"

logger = logging.getLogger(__name__)


class SecretUnreadable(Exception):
    """A sealed secret that none of the configured keys opens."""


def _sealer() -> MultiFernet:
    """One Fernet key per Django secret key, the current one first: it seals, and every one opens."""
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    derived = [salted_hmac(_SEAL_SALT, "", key, algorithm="sha256").digest() for key in keys]
    return MultiFernet([Fernet(base64.urlsafe_b64encode(key)) for key in derived])


def seal(secret: str) -> str:
    return _sealer().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _sealer().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        logger.error(
            "A webhook signing secret was sealed under a SECRET_KEY that is neither the current one nor in "
            "SECRET_KEY_FALLBACKS: put the old key back in DJANGO_SECRET_KEY_FALLBACKS (then run "
            "reseal_webhook_secrets), or have the tenant register the endpoint again."
        )
        raise SecretUnreadable(
            "This endpoint's signing secret can no longer be read on the server (its key was changed). "
            "Ask an operator to restore the key, or delete the endpoint and register it again for a new secret."
        ) from exc


def reseal(sealed: str) -> str:
    """The same secret sealed under the current key; SecretUnreadable when no configured key opens it."""
    return seal(unseal(sealed))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
