"""The webhooks pages, for a tenant's owners and admins: register an endpoint (its secret shown
once), see each endpoint's delivery log, pause, resume or remove it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods, require_POST

from tenants.audit import audit_record_for_request
from tenants.decorators import tenant_view
from tenants.models import AuditAction, Membership
from webhooks.forms import WebhookEndpointForm
from webhooks.selectors import deliveries_for_endpoint, endpoint_for_tenant, endpoints_for_tenant
from webhooks.services import endpoint_create, endpoint_delete, endpoint_update
from webhooks.signing import SecretUnreadable

# The session key that lets the one page after an endpoint is made show its secret (unsealed from
# the row there: the session never holds it).
NEW_SECRET_SESSION_KEY = "new_webhook_secret"  # noqa: S105 (a session key's name)
LOG_PAGE_SIZE = 50


@require_http_methods(["GET", "POST"])
@tenant_view(require="manage")
def webhooks(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    form = WebhookEndpointForm(request.POST or None, initial={"is_active": True})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint = endpoint_create(
                tenant=tenant,
                created_by=request.user,  # type: ignore[arg-type]
                url=data["url"],
                events=data["events"],
                description=data["description"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            audit_record_for_request(
                request, tenant=tenant, action=AuditAction.WEBHOOK_CREATED, target=endpoint.url,
                detail={"webhook": str(endpoint.id), "events": endpoint.events},
            )  # fmt: skip
            request.session[NEW_SECRET_SESSION_KEY] = {"endpoint": str(endpoint.id)}
            messages.success(request, "Webhook added. Copy its signing secret now: it is not shown again.")
            return redirect("webhooks:detail", tenant.slug, endpoint.id)
    status = 400 if request.method == "POST" else 200
    context = {"tenant": tenant, "membership": membership, "form": form, "endpoints": endpoints_for_tenant(tenant)}
    return render(request, "webhooks/webhooks.html", context, status=status)


@require_http_methods(["GET"])
@tenant_view(require="manage")
def detail(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_for_tenant(membership.tenant, endpoint_id)
    secret = None
    waiting = request.session.get(NEW_SECRET_SESSION_KEY)
    if waiting and waiting["endpoint"] == str(endpoint.id):
        request.session.pop(NEW_SECRET_SESSION_KEY)
        try:
            secret = endpoint.secret
        except SecretUnreadable as exc:  # the server's key changed in between: say so, not a 500
            messages.error(request, str(exc))
    log = Paginator(deliveries_for_endpoint(endpoint), LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "tenant": membership.tenant,
        "membership": membership,
        "endpoint": endpoint,
        "log": log,
        "secret": secret,
    }
    response = render(request, "webhooks/detail.html", context)
    if secret:
        patch_cache_control(response, no_store=True)
    return response


@require_POST
@tenant_view(require="manage")
def toggle(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    """Pauses an active endpoint (its deliveries wait) or resumes a paused one."""
    endpoint = endpoint_for_tenant(membership.tenant, endpoint_id)
    endpoint_update(endpoint=endpoint, is_active=not endpoint.is_active)
    audit_record_for_request(
        request, tenant=membership.tenant, action=AuditAction.WEBHOOK_CHANGED, target=endpoint.url,
        detail={"webhook": str(endpoint.id), "is_active": endpoint.is_active},
    )  # fmt: skip
    messages.success(request, f"Webhook {'resumed' if endpoint.is_active else 'paused'}.")
    return redirect("webhooks:detail", membership.tenant.slug, endpoint.id)


@require_POST
@tenant_view(require="manage")
def delete(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_for_tenant(membership.tenant, endpoint_id)
    url = endpoint.url
    audit_record_for_request(
        request, tenant=membership.tenant, action=AuditAction.WEBHOOK_DELETED, target=url,
        detail={"webhook": str(endpoint.id)},
    )  # fmt: skip
    endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Webhook {url} removed.")
    return redirect("webhooks:list", membership.tenant.slug)
