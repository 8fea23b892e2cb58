from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, QuerySet, When
from django.http import Http404

from tenants.models import ApiToken, Invitation, Membership, Role, Tenant


def memberships_for_user(user: User | AnonymousUser) -> QuerySet[Membership]:
    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user=user, tenant__is_active=True).select_related("tenant")


def membership_for_slug(user: User | AnonymousUser, slug: str) -> Membership:
    """The user's membership in the tenant, or 404: the same answer for a missing tenant,
    an inactive one and one the user does not belong to."""
    membership = memberships_for_user(user).filter(tenant__slug=slug).first()
    if membership is None:
        raise Http404("No such tenant.")
    return membership


def tokens_for_member(membership: Membership) -> QuerySet[ApiToken]:
    tokens = ApiToken.objects.filter(tenant=membership.tenant).select_related("user")
    return tokens if membership.can_manage else tokens.filter(user=membership.user)


def members_of_tenant(tenant: Tenant) -> QuerySet[Membership]:
    """The tenant's members, owners first, then by name."""
    order = Case(*(When(role=role, then=rank) for rank, role in enumerate(Role.values)))
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by(order, "user__username")


def member_by_id(tenant: Tenant, member_id: int) -> Membership:
    """One membership of the tenant, or 404: the same for a missing id and another tenant's."""
    member = members_of_tenant(tenant).filter(pk=member_id).select_related("tenant").first()
    if member is None:
        raise Http404("No such member.")
    return member


def pending_invitations(tenant: Tenant) -> QuerySet[Invitation]:
    return Invitation.objects.pending().filter(tenant=tenant).select_related("invited_by", "tenant")


def invitation_by_id(tenant: Tenant, invitation_id: int) -> Invitation:
    """One pending invitation of the tenant, or 404: the same for a missing, used or foreign id."""
    invitation = pending_invitations(tenant).filter(pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation
