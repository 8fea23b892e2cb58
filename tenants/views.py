from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ingestion.selectors import recent_assets, status_counts
from ingestion.services import tenant_storage_used
from tenants.decorators import tenant_view
from tenants.models import Membership
from tenants.selectors import memberships_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Opens the tenant named in the session, or the only one; with several, the user chooses."""
    memberships = list(memberships_for_user(request.user))
    remembered = request.session.get("tenant_slug")
    for membership in memberships:
        if membership.tenant.slug == remembered:
            return redirect("tenants:dashboard", membership.tenant.slug)
    if len(memberships) == 1:
        return redirect("tenants:dashboard", memberships[0].tenant.slug)
    return render(request, "tenants/home.html", {"memberships": memberships})


@tenant_view()
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    return render(
        request,
        "tenants/dashboard.html",
        {
            "tenant": tenant,
            "membership": membership,
            "counts": status_counts(tenant),
            "storage_used": tenant_storage_used(tenant),
            "assets": recent_assets(tenant, limit=24),
        },
    )
