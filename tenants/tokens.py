"""API tokens: made, checked and revoked here."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from tenants.decorators import Permission
from tenants.models import ApiToken, Membership, Tenant, TokenScope

KEY_PREFIX = "isk_"
# last_used_at is written at most this often per token, so every request does not write a row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    # Keys carry 256 random bits: a fast hash is enough, and lookups stay one indexed query.
    return hashlib.sha256(key.encode()).hexdigest()


# The scope a key needs for what a view requires of the role (None: reading and searching).
SCOPE_NEEDED: dict[Permission | None, TokenScope] = {
    None: TokenScope.READ,
    "upload": TokenScope.WRITE,
    "edit": TokenScope.WRITE,
    "delete": TokenScope.WRITE,
    "manage": TokenScope.ADMIN,
}
SCOPE_ORDER = list(TokenScope)


def scope_refusal(token: ApiToken, need: Permission | None) -> str | None:
    """Why this key's scope does not cover `need`, naming the scope needed, or None when it does.
    The role is checked separately (tenants.decorators.role_refusal): a key can do what both allow."""
    needed = SCOPE_NEEDED[need]
    if SCOPE_ORDER.index(TokenScope(token.scope)) >= SCOPE_ORDER.index(needed):
        return None
    return f"This API key has the {token.scope} scope; this needs a key with the {needed.value} scope."


def api_token_create(*, tenant: Tenant, user: User, name: str, scope: str = TokenScope.WRITE) -> tuple[ApiToken, str]:
    """Returns the token and its key; the key is not stored and cannot be shown again. The scope
    limits the key below its user's role (`read`, `write`, `admin`); it never raises it."""
    if not Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError(f"{user.get_username()} is not a member of {tenant.slug}.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        tenant=tenant,
        user=user,
        name=name.strip() or "API token",
        prefix=key[:12],
        key_hash=hash_key(key),
        scope=scope,
    )
    token.full_clean()
    token.save()
    return token, key


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_authenticate(key: str) -> tuple[ApiToken, Membership] | None:
    """The active token for this key and its user's current membership, or None."""
    token = (
        ApiToken.objects.active()
        .select_related("tenant", "user")
        .filter(key_hash=hash_key(key), tenant__is_active=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    membership = Membership.objects.filter(tenant=token.tenant, user=token.user).first()
    if membership is None:
        return None
    membership.tenant = token.tenant  # already loaded with the token: no second join per request
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token, membership
