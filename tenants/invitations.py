"""Invitations: an owner or admin invites an e-mail with a role; the mail carries a link that works
once, within INVITATION_MAX_AGE_DAYS; following it, a person with an account (whose e-mail is the
invited one) joins, and a new person sets a username and password and joins. The rules are here,
once, for the pages and the API.

The link's token is random and stored as a hash only (like API keys): it can be checked, used once
and made void by a withdrawal or a re-sending, which a signature alone cannot. A link that does not
open an invitation for the person who follows it (unknown, withdrawn, or addressed to another
e-mail than the account's) gets one answer, whichever it is, so a link tells its holder nothing
about another tenant unless it is theirs."""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from tenants.audit import Actor
from tenants.members import may_grant, may_manage_people
from tenants.models import AuditAction, Invitation, Membership, Role, Tenant

logger = logging.getLogger(__name__)

NOT_YOURS = (
    "This invitation link does not open an invitation for you. It may have been mistyped, withdrawn, "
    "replaced by a newer mail, or sent to another e-mail address than your account's."
)


class MailNotSent(Exception):
    """The mail server refused or could not be reached; nothing was kept."""


class InvitationUnusable(Exception):
    """The link opens no invitation the person following it may accept; the message says why."""


def mail_written_to() -> Path | None:
    """Where mails go when they are written as files instead of sent (the default), for the pages to say."""
    if settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
        return Path(settings.EMAIL_FILE_PATH)
    return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def accept_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + reverse("invitation-accept", args=[token])


def _member_with_email(tenant: Tenant, email: str) -> Membership | None:
    return Membership.objects.select_related("user").filter(tenant=tenant, user__email__iexact=email).first()


def invitation_create(*, actor: Actor, email: str, role: str, base_url: str) -> Invitation:
    """Invites `email` as `role` and sends the mail (MailNotSent: no invitation is kept). Refused: a
    role an admin may not give (PermissionDenied), someone already a member or already invited
    (ValidationError naming `email`)."""
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r} is not a role; use one of {', '.join(Role.values)}."]})
    may_grant(actor, role)
    tenant = actor.membership.tenant
    email = normalize_email(email)
    member = _member_with_email(tenant, email)
    if member is not None:
        name = member.user.get_username()
        raise ValidationError({"email": [f"{email} is already a member of {tenant.name} ({name}, {member.role})."]})
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        tenant=tenant,
        email=email,
        role=role,
        invited_by=actor.membership.user,
        token_hash=hash_token(token),
        sent_at=timezone.now(),
    )
    try:
        invitation.full_clean()
    except ValidationError as error:
        if "__all__" in error.message_dict:  # the one-pending-invitation constraint
            raise ValidationError(
                {"email": [f"{email} already has a pending invitation: re-send or withdraw it."]}
            ) from None
        raise
    try:
        invitation.save()
    except IntegrityError:  # the same invitation made at the same moment
        raise ValidationError({"email": [f"{email} already has a pending invitation."]}) from None
    try:
        _send(invitation, token, base_url)
    except MailNotSent:
        invitation.delete()
        raise
    actor.record(action=AuditAction.INVITATION_SENT, target=email, detail={"role": role})
    return invitation


def invitation_resend(*, actor: Actor, invitation: Invitation, base_url: str) -> Invitation:
    """A new link (the old one stops working) and a fresh INVITATION_MAX_AGE_DAYS."""
    may_grant(actor, invitation.role)
    _pending(actor, invitation)
    token = secrets.token_urlsafe(32)
    previous = (invitation.token_hash, invitation.sent_at)
    invitation.token_hash, invitation.sent_at = hash_token(token), timezone.now()
    invitation.save(update_fields=["token_hash", "sent_at"])
    try:
        _send(invitation, token, base_url)
    except MailNotSent:
        invitation.token_hash, invitation.sent_at = previous
        invitation.save(update_fields=["token_hash", "sent_at"])
        raise
    actor.record(action=AuditAction.INVITATION_RESENT, target=invitation.email, detail={"role": invitation.role})
    return invitation


def invitation_withdraw(*, actor: Actor, invitation: Invitation) -> None:
    may_grant(actor, invitation.role)  # an admin cannot take back an owner's invitation either
    _pending(actor, invitation)
    email, role = invitation.email, invitation.role
    invitation.delete()
    actor.record(action=AuditAction.INVITATION_WITHDRAWN, target=email, detail={"role": role})


def _pending(actor: Actor, invitation: Invitation) -> None:
    may_manage_people(actor)
    if invitation.tenant_id != actor.membership.tenant_id or invitation.accepted_at is not None:
        raise ValidationError("This invitation is no longer pending.")


def _send(invitation: Invitation, token: str, base_url: str) -> None:
    context = {
        "invitation": invitation,
        "tenant": invitation.tenant,
        "inviter": invitation.invited_by.get_username() if invitation.invited_by else "An admin",
        "url": accept_url(base_url, token),
        "max_age_days": settings.INVITATION_MAX_AGE_DAYS,
    }
    subject = render_to_string("tenants/email/invitation_subject.txt", context).strip()
    body = render_to_string("tenants/email/invitation.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("The invitation mail to %s was not sent: %s", invitation.email, error)
        raise MailNotSent(
            "The mail server did not take the invitation mail; nothing was sent. Try again later."
        ) from error


# --- following the link -------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    membership: Membership
    already_member: bool


def invitation_for_token(token: str) -> Invitation | None:
    return Invitation.objects.select_related("tenant", "invited_by").filter(token_hash=hash_token(token)).first()


def invitation_for_user(token: str, user: User) -> Invitation:
    """The invitation this link opens for this user (InvitationUnusable: why not). Missing, withdrawn
    and addressed to another e-mail answer alike; used and expired are said to its own addressee only."""
    invitation = invitation_for_token(token)
    if invitation is None or not invitation.tenant.is_active or not _same_email(invitation.email, user.email):
        raise InvitationUnusable(NOT_YOURS)
    if invitation.accepted_at is not None:
        raise InvitationUnusable("This invitation has already been used: each link works once.")
    if invitation.is_expired:
        inviter = invitation.invited_by.get_username() if invitation.invited_by else "an admin of the tenant"
        raise InvitationUnusable(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Ask {inviter} to send it again."
        )
    return invitation


def _same_email(invited: str, account: str) -> bool:
    return bool(account) and normalize_email(invited).lower() == normalize_email(account).lower()


@transaction.atomic
def invitation_accept(*, token: str, user: User, address: str = "") -> Accepted:
    """Puts the user in the invitation's tenant with its role and uses the link up. A user already a
    member keeps their role (an invitation never demotes) and the link is used up all the same."""
    invitation = invitation_for_user(token, user)
    claimed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if not claimed:  # used by another request between the check and here
        raise InvitationUnusable("This invitation has already been used: each link works once.")
    existing = Membership.objects.select_related("tenant").filter(tenant=invitation.tenant, user=user).first()
    if existing is not None:
        return Accepted(existing, already_member=True)
    membership = Membership(tenant=invitation.tenant, user=user, role=invitation.role)
    membership.full_clean(validate_unique=False)
    membership.save()
    Actor(membership, address=address).record(
        action=AuditAction.INVITATION_ACCEPTED, target=invitation.email, detail={"role": invitation.role}
    )
    return Accepted(membership, already_member=False)


def signup_invitation(token: str) -> Invitation:
    """The invitation a new person may sign up with: pending, not expired, and for an e-mail no
    account has yet. The messages name no tenant and no e-mail: whoever holds a link may try it."""
    invitation = invitation_for_token(token)
    if invitation is None or invitation.accepted_at is not None or invitation.is_expired:
        raise InvitationUnusable(
            "This invitation link cannot be used: it may have been mistyped, withdrawn, replaced by a newer "
            "mail, used already, or have expired. Ask whoever invited you to send it again."
        )
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvitationUnusable("An account with the invited e-mail address exists already: log in to accept.")
    return invitation


@transaction.atomic
def invitation_signup(*, token: str, username: str, password: str, address: str = "") -> Accepted:
    """A new account for the invited e-mail (its username and password already validated by the
    form), in the tenant with the invitation's role."""
    invitation = signup_invitation(token)
    user = User.objects.create_user(username=username, email=invitation.email, password=password)
    return invitation_accept(token=token, user=user, address=address)
