"""The tenant's audit log: what its people did that matters later, who did it (a user, or an API
key and its user), when and from which address.

Every app records through `audit_record` (or `audit_record_for_request` where a request is at hand),
from the view, API or service that owns the action; the names of the actions are
`tenants.models.AuditAction`. Reads go through `audit_events_for_tenant`, which never returns
another tenant's entries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.request import Request

from tenants.models import ApiToken, AuditAction, AuditEvent, Membership, Tenant
from tenants.ratelimit import client_address

# The attribute ApiTokenAuthentication sets on the request to the key that authenticated it.
REQUEST_TOKEN_ATTRIBUTE = "api_token"  # noqa: S105 (an attribute name, not a secret)


def audit_record(
    *,
    tenant: Tenant,
    action: str,
    actor_user: AbstractBaseUser | AnonymousUser | None = None,
    api_token: ApiToken | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    address: str = "",
) -> AuditEvent:
    """Adds one entry to the tenant's log. `action` is an `AuditAction` value (ValueError for any
    other); `target` names what was acted on for a person (a username, an e-mail, a file name);
    `detail` holds what else is worth keeping (counts, old and new roles): JSON, with ids, dates and
    times turned into text."""
    action = AuditAction(action).value
    if api_token is not None and api_token.tenant_id != tenant.pk:
        raise ValueError("The API key belongs to another tenant.")
    user = actor_user if actor_user is not None and actor_user.is_authenticated else None
    if user is None and api_token is not None:
        user = api_token.user
    event = AuditEvent(
        tenant=tenant,
        action=action,
        actor_user=user,  # type: ignore[misc]
        actor_username=user.get_username() if user is not None else "",
        api_token=api_token,
        api_token_label=token_label(api_token) if api_token is not None else "",
        address=address[:64],
        target=target[:300],
        detail=json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder)),  # ids, dates and times as text
    )
    event.full_clean(exclude=["tenant", "actor_user", "api_token"])  # rows in hand: no query to check they exist
    event.save()
    return event


def token_label(token: ApiToken) -> str:
    """How the log names an API key: its name and first characters (the key itself is never kept)."""
    return f"{token.name} ({token.prefix}…)"


def audit_record_for_request(
    request: HttpRequest | Request,
    *,
    tenant: Tenant,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """`audit_record` with the actor taken from the request: its user, the API key that
    authenticated it (REST views), and the client's address."""
    return audit_record(
        tenant=tenant,
        action=action,
        actor_user=request.user,
        api_token=getattr(request, REQUEST_TOKEN_ATTRIBUTE, None),
        target=target,
        detail=detail,
        address=client_address(request),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Actor:
    """Who does something to a tenant's people: their membership (whose role decides what they may
    do), the API key when it comes through the API, and the client's address, for the log."""

    membership: Membership
    api_token: ApiToken | None = None
    address: str = ""

    @classmethod
    def of_request(cls, request: HttpRequest | Request, membership: Membership) -> Actor:
        token = getattr(request, REQUEST_TOKEN_ATTRIBUTE, None)
        return cls(membership, token, client_address(request))  # type: ignore[arg-type]

    def record(
        self, *, action: str, target: str = "", detail: dict[str, Any] | None = None, tenant: Tenant | None = None
    ) -> AuditEvent:
        return audit_record(
            tenant=tenant or self.membership.tenant,
            action=action,
            actor_user=self.membership.user,
            api_token=self.api_token,
            target=target,
            detail=detail,
            address=self.address,
        )


def audit_events_for_tenant(
    tenant: Tenant, *, actor_user_id: int | None = None, action: str | None = None
) -> QuerySet[AuditEvent]:
    """The tenant's entries, newest first, optionally of one person and one action."""
    events = AuditEvent.objects.filter(tenant=tenant).select_related("actor_user", "api_token")
    if actor_user_id is not None:
        events = events.filter(actor_user_id=actor_user_id)
    if action:
        events = events.filter(action=action)
    return events.order_by("-created_at", "-id")


def audit_actors_for_tenant(tenant: Tenant) -> list[tuple[int, str]]:
    """The people (user id, name) who appear in the tenant's log, by name: the log's person filter."""
    rows = (
        AuditEvent.objects.filter(tenant=tenant, actor_user__isnull=False)
        .values_list("actor_user_id", "actor_user__username")
        .distinct()
        .order_by("actor_user__username")
    )
    return [(int(user_id), str(username)) for user_id, username in rows]
