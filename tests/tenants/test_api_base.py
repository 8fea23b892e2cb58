"""Every REST view stands on TenantScopedMixin, and no subclass can loosen it."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.views import APIView

from tenants.api import RolePermission, TenantScopedMixin
from tenants.authentication import ApiTokenAuthentication
from tenants.throttling import ApiKeyRateThrottle, TenantRateThrottle


def api_views() -> dict[str, type[APIView] | None]:
    """Every view class routed under /api/v1/, from Django's resolver."""
    found: dict[str, type[APIView] | None] = {}

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
                found[route] = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)

    walk(get_resolver().url_patterns, "")
    return found


def test_the_walk_finds_the_api():
    assert len(api_views()) >= 6


@pytest.mark.parametrize("route", sorted(api_views()))
def test_every_api_view_authenticates_by_token_and_checks_tenant_and_role(route):
    view_class = api_views()[route]
    assert view_class is not None and issubclass(view_class, TenantScopedMixin), route
    view = view_class()
    assert [type(a) for a in view.get_authenticators()] == [ApiTokenAuthentication]
    assert [type(p) for p in view.get_permissions()][:2] == [IsAuthenticated, RolePermission]
    assert [type(t) for t in view.get_throttles()] == [ApiKeyRateThrottle, TenantRateThrottle]


@pytest.mark.parametrize(
    "attribute",
    [
        ("permission_classes", [AllowAny]),
        ("authentication_classes", []),
        ("get_queryset", lambda self: None),
        ("get_object", lambda self: None),
        ("get_permissions", lambda self: []),
        ("get_authenticators", lambda self: []),
        ("check_permissions", lambda self, request: None),
        ("perform_authentication", lambda self, request: None),
        ("throttle_classes", []),
        ("get_throttles", lambda self: []),
        ("check_throttles", lambda self, request: None),
    ],
    ids=lambda a: a[0],
)
def test_a_subclass_that_loosens_the_base_is_refused_when_defined(attribute):
    name, value = attribute
    with pytest.raises(TypeError, match=name):
        type("Loose", (TenantScopedMixin,), {name: value})


def test_a_subclass_may_only_add_checks():
    class Closed(BasePermission):
        def has_permission(self, request, view):
            return False

    view_class = type("Stricter", (TenantScopedMixin,), {"extra_permission_classes": [Closed]})
    assert [type(p) for p in view_class().get_permissions()] == [IsAuthenticated, RolePermission, Closed]
