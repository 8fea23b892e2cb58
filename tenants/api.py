"""What every REST view shares: token authentication, the tenant taken from the token, and
querysets scoped to it in one place that subclasses cannot bypass."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.authentication import ApiTokenAuthentication
from tenants.decorators import Permission, role_refusal
from tenants.models import Membership, Tenant
from tenants.schema import TenantScopedSchema

Need = Permission | None


class RolePermission(BasePermission):
    """Reads (and searches) for every role; writes need the role's right, named by the view, and
    are refused with the same reason as on the pages."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        membership = request.auth
        if not isinstance(membership, Membership):
            return False
        refusal = role_refusal(membership, view.required_permission(request))  # type: ignore[attr-defined]
        if refusal is not None:
            self.message = refusal
        return refusal is None


class TenantScopedMixin(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated, RolePermission]
    schema = TenantScopedSchema()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} may not override get_queryset: tenant scoping happens in TenantScopedMixin."
            )

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
