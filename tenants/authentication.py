from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants import ratelimit
from tenants.audit import REQUEST_TOKEN_ATTRIBUTE
from tenants.tokens import api_token_authenticate

SCOPE = "token"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>` or `Authorization: Bearer <key>`. The token's tenant and the
    user's membership in it travel on `request.auth`."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Token <key>' or 'Bearer <key>'.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            key = ""
        found = api_token_authenticate(key) if key else None
        if found is not None:
            # A valid key always works: the limit below stops guessing, it does not lock out the
            # integrations that share an address (a NAT, a proxy) with whoever keeps failing.
            token, membership = found
            setattr(request, REQUEST_TOKEN_ATTRIBUTE, token)  # who acted, for the audit log
            return token.user, membership
        if ratelimit.is_blocked(SCOPE, request):
            raise exceptions.Throttled(
                wait=settings.AUTH_FAILURE_WINDOW_SECONDS, detail="Too many invalid tokens from this address."
            )
        ratelimit.record_failure(SCOPE, request)
        raise exceptions.AuthenticationFailed("Invalid or revoked token." if key else "Invalid token.")

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'
