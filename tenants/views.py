from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from tenants.decorators import tenant_view
from tenants.models import Membership
from tenants.selectors import memberships_for_user, tokens_for_member
from tenants.tokens import api_token_create, api_token_revoke


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'DAM sync'.")


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


@require_http_methods(["GET", "POST"])
@tenant_view()
def tokens(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Members make and revoke their own API keys; owners and admins see and revoke everyone's."""
    tenant = membership.tenant
    new_key = None
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, new_key = api_token_create(tenant=tenant, user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
        messages.success(request, f"Token {token.name} created. Copy the key now: it is not shown again.")
        form = ApiTokenForm()
    listed = tokens_for_member(membership)
    return render(
        request,
        "tenants/tokens.html",
        {"tenant": tenant, "membership": membership, "form": form, "tokens": listed, "new_key": new_key},
    )


@require_POST
@tenant_view()
def token_revoke(request: HttpRequest, membership: Membership, token_id: int) -> HttpResponse:
    token = tokens_for_member(membership).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    api_token_revoke(token=token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("tenants:tokens", membership.tenant.slug)
