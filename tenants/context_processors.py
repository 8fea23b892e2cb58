from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tenants.selectors import memberships_for_user


def memberships(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "my_memberships": memberships_for_user(user),
        "current_membership": getattr(request, "membership", None),
    }
