"""Changing a member's role and removing a member: the rules are here, once, for the pages and the API.

Owners and admins manage people; only an owner may make or unmake an owner (an admin can neither give
nor take the owner role, nor remove an owner); a tenant always keeps at least one owner. A removed
member loses access at once: every page and API call looks the membership up again, and their API keys
for the tenant are revoked, so a later invitation does not bring old keys back."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.audit import Actor
from tenants.models import ApiToken, AuditAction, Membership, Role

OWNERS_ONLY = "Only an owner may make or unmake owners."


class LastOwnerError(ValidationError):
    """The change would leave the tenant without an owner."""


def may_manage_people(actor: Actor) -> None:
    if not actor.membership.can_manage:
        raise PermissionDenied("Only owners and admins of this tenant may do this.")


def may_grant(actor: Actor, role: str) -> None:
    """Whether the actor may hand out `role` (an invitation, a role change): admins never `owner`."""
    may_manage_people(actor)
    if role == Role.OWNER and actor.membership.role != Role.OWNER:
        raise PermissionDenied(OWNERS_ONLY)


def _locked_owner_count(member: Membership) -> int:
    """The tenant's owners, with their rows locked until the transaction ends, so that two owners
    demoting or removing each other at once cannot leave none."""
    return len(Membership.objects.select_for_update().filter(tenant_id=member.tenant_id, role=Role.OWNER))


@transaction.atomic
def member_role_change(*, actor: Actor, member: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r} is not a role; use one of {', '.join(Role.values)}."]})
    _same_tenant(actor, member)
    may_grant(actor, role)
    if member.role == Role.OWNER and actor.membership.role != Role.OWNER:
        raise PermissionDenied(OWNERS_ONLY)
    old = member.role
    if old == role:
        return member
    if old == Role.OWNER and _locked_owner_count(member) <= 1:
        raise LastOwnerError({"role": [_last_owner(member)]})
    member.role = role
    member.full_clean(validate_unique=False)
    member.save(update_fields=["role"])
    actor.record(
        action=AuditAction.MEMBER_ROLE_CHANGED, target=member.user.get_username(), detail={"from": old, "to": role}
    )
    return member


@transaction.atomic
def member_remove(*, actor: Actor, member: Membership) -> None:
    _same_tenant(actor, member)
    may_manage_people(actor)
    if member.role == Role.OWNER and actor.membership.role != Role.OWNER:
        raise PermissionDenied(OWNERS_ONLY)
    if member.role == Role.OWNER and _locked_owner_count(member) <= 1:
        raise LastOwnerError(_last_owner(member))
    revoked = ApiToken.objects.active().filter(tenant_id=member.tenant_id, user_id=member.user_id)
    keys = revoked.update(revoked_at=timezone.now())
    username, role = member.user.get_username(), member.role
    member.delete()
    actor.record(action=AuditAction.MEMBER_REMOVED, target=username, detail={"role": role, "api_keys_revoked": keys})


def _last_owner(member: Membership) -> str:
    return f"{member.user.get_username()} is the last owner of {member.tenant.name}: make someone else owner first."


def _same_tenant(actor: Actor, member: Membership) -> None:
    if member.tenant_id != actor.membership.tenant_id:
        raise PermissionDenied("The member belongs to another tenant.")  # callers look members up in their tenant
