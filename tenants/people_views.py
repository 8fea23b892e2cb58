"""The pages where owners and admins run their tenant's people: members and their roles, invitations,
and the audit log. Each view parses the input, calls one service of tenants.members or
tenants.invitations, and says what happened; the rules live in those services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.audit import Actor, audit_actors_for_tenant, audit_events_for_tenant
from tenants.decorators import tenant_view
from tenants.forms import AuditFilterForm, InvitationForm, RoleForm, grantable_roles
from tenants.invitations import (
    MailNotSent,
    invitation_create,
    invitation_resend,
    invitation_withdraw,
    mail_written_to,
)
from tenants.members import member_remove, member_role_change
from tenants.models import Membership, Role
from tenants.selectors import invitation_by_id, member_by_id, members_of_tenant, pending_invitations

AUDIT_PAGE_SIZE = 50


def may_change(actor: Membership, role: str) -> bool:
    """Whether the page offers to change or remove a member or invitation of this role (the services
    decide in the end): admins may not touch owners."""
    return actor.role == Role.OWNER or role != Role.OWNER


def _members_page(
    request: HttpRequest, membership: Membership, form: InvitationForm, status: int = 200
) -> HttpResponse:
    tenant = membership.tenant
    members = [(member, may_change(membership, member.role)) for member in members_of_tenant(tenant)]
    context: dict[str, Any] = {
        "tenant": tenant,
        "membership": membership,
        "members": members,
        "roles": grantable_roles(membership),
        "invitations": [(i, may_change(membership, i.role)) for i in pending_invitations(tenant)],
        "form": form,
        "mail_dir": mail_written_to(),
        "max_age_days": settings.INVITATION_MAX_AGE_DAYS,
    }
    return render(request, "tenants/members.html", context, status=status)


def _sent(request: HttpRequest, email: str, verb: str) -> None:
    written = mail_written_to()
    where = f" The mail was written to a file in {written}: no mail server is set (EMAIL_URL)." if written else ""
    messages.success(request, f"Invitation {verb} to {email}.{where}")


def _back(membership: Membership) -> HttpResponse:
    return redirect("tenants:members", membership.tenant.slug)


@require_GET
@tenant_view(require="manage")
def members(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _members_page(request, membership, InvitationForm(inviter=membership))


@require_POST
@tenant_view(require="manage")
def invite(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = InvitationForm(request.POST, inviter=membership)
    if form.is_valid():
        try:
            invitation = invitation_create(
                actor=Actor.of_request(request, membership),
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/"),
            )
        except ValidationError as error:
            form.add_error(None, error)
        except MailNotSent as error:
            form.add_error(None, str(error))
        else:
            _sent(request, invitation.email, "sent")
            return _back(membership)
    return _members_page(request, membership, form, status=400)


@require_POST
@tenant_view(require="manage")
def invitation_resend_view(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    invitation = invitation_by_id(membership.tenant, invitation_id)
    try:
        invitation_resend(
            actor=Actor.of_request(request, membership), invitation=invitation, base_url=request.build_absolute_uri("/")
        )
    except MailNotSent as error:
        messages.error(request, str(error))
    else:
        _sent(request, invitation.email, "sent again, with a new link,")
    return _back(membership)


@require_POST
@tenant_view(require="manage")
def invitation_withdraw_view(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    invitation = invitation_by_id(membership.tenant, invitation_id)
    invitation_withdraw(actor=Actor.of_request(request, membership), invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} withdrawn: its link no longer works.")
    return _back(membership)


@require_POST
@tenant_view(require="manage")
def member_role(request: HttpRequest, membership: Membership, member_id: int) -> HttpResponse:
    member = member_by_id(membership.tenant, member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return _back(membership)
    try:
        member_role_change(actor=Actor.of_request(request, membership), member=member, role=form.cleaned_data["role"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _back(membership)
    messages.success(request, f"{member.user.get_username()} is now {member.get_role_display().lower()}.")
    if member.pk == membership.pk and not member.can_manage:
        return redirect("ingestion:dashboard", membership.tenant.slug)  # you no longer see this page
    return _back(membership)


@require_http_methods(["GET", "POST"])
@tenant_view(require="manage")
def member_remove_view(request: HttpRequest, membership: Membership, member_id: int) -> HttpResponse:
    """GET asks (a page with Remove and Cancel), POST removes."""
    member = member_by_id(membership.tenant, member_id)
    if request.method == "GET":
        context = {"tenant": membership.tenant, "member": member, "allowed": may_change(membership, member.role)}
        return render(request, "tenants/member_remove.html", context)
    try:
        member_remove(actor=Actor.of_request(request, membership), member=member)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _back(membership)
    messages.success(request, f"{member.user.get_username()} was removed from {membership.tenant.name}.")
    if member.pk == membership.pk:
        return redirect("tenants:home")
    return _back(membership)


@require_GET
@tenant_view(require="manage")
def audit_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The tenant's log, newest first, by person and action."""
    tenant = membership.tenant
    form = AuditFilterForm(request.GET or None, people=audit_actors_for_tenant(tenant))
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_events_for_tenant(tenant, actor_user_id=filters.get("person"), action=filters.get("action") or None)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"tenant": tenant, "form": form, "page": page, "query": query.urlencode()}
    return render(
        request, "tenants/audit_log.html", context, status=200 if form.is_valid() or not form.is_bound else 400
    )
