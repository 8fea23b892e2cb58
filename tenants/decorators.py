from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from tenants.models import Membership
from tenants.selectors import membership_for_slug

Permission = Literal["upload", "edit", "delete", "manage"]
TenantView = Callable[..., HttpResponseBase]

_REFUSALS: dict[Permission, str] = {
    "upload": "Your role in this tenant may search but not upload images.",
    "edit": "Your role in this tenant may search but not edit images.",
    "delete": "Your role in this tenant may search but not delete images.",
    "manage": "Only owners and admins of this tenant may do this.",
}


def role_refusal(membership: Membership, need: Permission | None) -> str | None:
    """Why this member may not do `need` (a person-readable reason), or None when the role allows it.
    The one role check of the pages (tenant_view) and of the API (tenants.api.RolePermission)."""
    if need is None or getattr(membership, f"can_{need}"):
        return None
    return _REFUSALS[need]


def tenant_view(*, require: Permission | None = None) -> Callable[[TenantView], TenantView]:
    """Resolves `tenant_slug` from the URL to the user's membership (404 for non-members, exactly
    as for a missing tenant) and passes it to the view as its second argument."""

    def decorator(view: TenantView) -> TenantView:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            membership: Membership = membership_for_slug(request.user, tenant_slug)
            refusal = role_refusal(membership, require)
            if refusal is not None:
                raise PermissionDenied(refusal)
            if request.session.get("tenant_slug") != membership.tenant.slug:  # a write only when it changes
                request.session["tenant_slug"] = membership.tenant.slug
            request.membership = membership  # type: ignore[attr-defined]
            return view(request, membership, *args, **kwargs)

        return wrapper

    return decorator
