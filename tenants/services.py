from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from tenants.models import Membership, Role, Tenant


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner: User | None = None, quota_bytes: int | None = None) -> Tenant:
    tenant = Tenant(slug=slug, name=name)
    if quota_bytes is not None:
        tenant.storage_quota_bytes = quota_bytes
    tenant.full_clean()
    tenant.save()
    if owner is not None:
        membership_set(tenant=tenant, user=owner, role=Role.OWNER)
    return tenant


def membership_set(*, tenant: Tenant, user: User, role: str) -> Membership:
    """Adds the user to the tenant, or changes the role of an existing member."""
    membership = Membership.objects.filter(tenant=tenant, user=user).first() or Membership(tenant=tenant, user=user)
    membership.role = role
    membership.full_clean(validate_unique=False)
    membership.save()
    return membership
