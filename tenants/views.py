from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods

from tenants.audit import audit_record_for_request, token_label
from tenants.decorators import tenant_view
from tenants.models import AuditAction, Membership, TokenScope
from tenants.selectors import memberships_for_user, tokens_for_member
from tenants.tokens import api_token_create, api_token_revoke


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'DAM sync'.")
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.READ,
        required=False,
        widget=forms.RadioSelect,
        help_text="The most the key may do; it never does more than your role allows.",
    )

    def clean_scope(self) -> str:
        return str(self.cleaned_data.get("scope") or TokenScope.READ)  # the least, unless asked


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Opens the tenant named in the session, or the only one; with several, the user chooses."""
    memberships = list(memberships_for_user(request.user))
    remembered = request.session.get("tenant_slug")
    for membership in memberships:
        if membership.tenant.slug == remembered:
            return redirect("ingestion:dashboard", membership.tenant.slug)
    if len(memberships) == 1:
        return redirect("ingestion:dashboard", memberships[0].tenant.slug)
    return render(request, "tenants/home.html", {"memberships": memberships})


# The session key under which a new API key waits for the one page that shows it.
NEW_KEY_SESSION_KEY = "new_api_key"


@require_http_methods(["GET", "POST"])
@tenant_view()
def tokens(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Members make and revoke their own API keys; owners and admins see and revoke everyone's.
    Post-redirect-get: a created key waits in the session for the page the redirect lands on, which
    shows it once, so reloading that page neither makes another key nor shows this one again."""
    tenant = membership.tenant
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, key = api_token_create(
            tenant=tenant,
            user=request.user,  # type: ignore[arg-type]
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
        )
        audit_record_for_request(
            request, tenant=tenant, action=AuditAction.API_KEY_CREATED, target=token_label(token),
            detail={"scope": token.scope, "user": token.user.get_username()},
        )  # fmt: skip
        request.session[NEW_KEY_SESSION_KEY] = {"tenant": tenant.slug, "key": key}
        messages.success(request, f"Token {token.name} created. Copy the key now: it is not shown again.")
        return redirect("tenants:tokens", tenant.slug)
    new_key = None
    waiting = request.session.get(NEW_KEY_SESSION_KEY)
    if waiting and waiting["tenant"] == tenant.slug:
        new_key = request.session.pop(NEW_KEY_SESSION_KEY)["key"]
    response = render(
        request,
        "tenants/tokens.html",
        {
            "tenant": tenant,
            "membership": membership,
            "form": form,
            "tokens": tokens_for_member(membership),
            "new_key": new_key,
        },
    )
    if new_key:
        patch_cache_control(response, no_store=True)  # the back button must not bring the key back either
    return response


@require_http_methods(["GET", "POST"])
@tenant_view()
def token_revoke(request: HttpRequest, membership: Membership, token_id: int) -> HttpResponse:
    """GET asks (a page with Revoke and Cancel, no JavaScript needed), POST revokes."""
    token = tokens_for_member(membership).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if request.method == "GET":
        return render(request, "tenants/token_revoke.html", {"tenant": membership.tenant, "token": token})
    if token.is_active:
        api_token_revoke(token=token)
        audit_record_for_request(
            request, tenant=membership.tenant, action=AuditAction.API_KEY_REVOKED, target=token_label(token),
            detail={"user": token.user.get_username()},
        )  # fmt: skip
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("tenants:tokens", membership.tenant.slug)
