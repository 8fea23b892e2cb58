"""What every REST view shares: token authentication, the tenant taken from the token, the role and
the key's scope checked, the rate limits, and querysets scoped to the tenant, in one place that
subclasses cannot bypass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import Throttled
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from tenants.audit import REQUEST_TOKEN_ATTRIBUTE
from tenants.authentication import ApiTokenAuthentication
from tenants.decorators import Permission, role_refusal
from tenants.models import ApiToken, Membership, Tenant
from tenants.schema import TenantScopedSchema
from tenants.throttling import ApiKeyRateThrottle, SlidingWindowThrottle, TenantRateThrottle
from tenants.tokens import scope_refusal

Need = Permission | None


class RolePermission(BasePermission):
    """Reads (and searches) for every role and scope; writes need the role's right, named by the
    view, and refused with the same reason as on the pages, and a key whose scope covers them
    (`read` < `write` < `admin`), refused naming the scope needed. Both are read afresh on every
    request: the membership and the key are loaded by the authentication each time."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        membership = request.auth
        token = getattr(request, REQUEST_TOKEN_ATTRIBUTE, None)
        if not isinstance(membership, Membership) or not isinstance(token, ApiToken):
            return False
        need = view.required_permission(request)  # type: ignore[attr-defined]
        refusal = role_refusal(membership, need) or scope_refusal(token, need)
        if refusal is not None:
            self.message = refusal
        return refusal is None


class TenantScopedMixin(APIView):
    """The base of every REST view: token authentication, the tenant taken from the token, the role
    and scope check, the rate limits per key and per tenant, and querysets and objects scoped to
    that tenant. None of it can be bypassed: the methods and attributes that decide who is let in,
    how often and what they see may not be overridden by a subclass (TypeError at class creation).
    A subclass adds checks, never removes them, by listing them in `extra_permission_classes`; they
    run after the tenant's and the role's. It may say a request costs more than one (`throttle_cost`),
    never less."""

    GUARDED = (
        "get_queryset",
        "get_object",
        "get_permissions",
        "get_authenticators",
        "check_permissions",
        "check_object_permissions",
        "perform_authentication",
        "authentication_classes",
        "permission_classes",
        "get_throttles",
        "check_throttles",
        "throttle_classes",
    )
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated, RolePermission]
    throttle_classes = [ApiKeyRateThrottle, TenantRateThrottle]
    extra_permission_classes: Sequence[type[BasePermission]] = ()
    schema = TenantScopedSchema()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in TenantScopedMixin.GUARDED if name in cls.__dict__]
        if overridden:
            raise TypeError(
                f"{cls.__name__} may not override {', '.join(overridden)}: authentication, permissions and "
                "tenant scoping happen in TenantScopedMixin (add checks with extra_permission_classes)."
            )

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [ApiTokenAuthentication()]

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated(), RolePermission(), *(permission() for permission in self.extra_permission_classes)]

    def get_throttles(self) -> list[BaseThrottle]:
        return [ApiKeyRateThrottle(), TenantRateThrottle()]

    def check_throttles(self, request: Request) -> None:
        """The key's limit, then the tenant's; the first refusal answers 429 naming its limit, with
        Retry-After, and takes back what the others counted for this request."""
        passed: list[SlidingWindowThrottle] = []
        for throttle in self.get_throttles():
            assert isinstance(throttle, SlidingWindowThrottle)  # noqa: S101 (get_throttles is guarded)
            if not throttle.allow_request(request, self):
                for earlier in passed:
                    earlier.undo()
                raise Throttled(wait=throttle.wait(), detail=throttle.refusal(request, self))
            passed.append(throttle)

    def throttle_cost(self, request: Request) -> int:
        """How many requests this one counts as against the rate limits."""
        return 1

    @property
    def api_token(self) -> ApiToken:
        token = getattr(self.request, REQUEST_TOKEN_ATTRIBUTE, None)
        assert isinstance(token, ApiToken)  # noqa: S101 (RolePermission has checked it)
        return token

    @property
    def membership(self) -> Membership:
        membership = self.request.auth
        assert isinstance(membership, Membership)  # noqa: S101 (RolePermission has checked it)
        return membership

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant

    def required_permission(self, request: Request) -> Need:
        return None

    def get_queryset(self) -> QuerySet[Any]:
        queryset: QuerySet[Any] | None = getattr(self, "queryset", None)
        if queryset is None:
            raise TypeError(f"{type(self).__name__} needs a queryset to scope.")
        model: type[Model] = queryset.model
        return queryset.filter(tenant=self.tenant) if hasattr(model, "tenant") else queryset.none()

    def get_object(self) -> Any:
        """The generic views' lookup on the scoped queryset, and the row's tenant checked once more."""
        obj = super().get_object()  # type: ignore[misc]
        if getattr(obj, "tenant_id", None) != self.tenant.pk:
            raise Http404
        return obj
