from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from tenants.models import ApiToken, Membership


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
