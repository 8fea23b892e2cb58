from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ingestion.forms import ImageMetadataForm
from ingestion.models import ImageAsset
from ingestion.selectors import asset_for_tenant, status_counts
from ingestion.services.deletion import asset_delete
from ingestion.services.editing import asset_update_metadata
from ingestion.uploadhandlers import early_refusals
from search.forms import ImageQueryForm, SearchParamsForm
from search.services import SearchResult, SimilarUnavailable, search_by_image, search_by_text, search_similar
from tenants.audit import audit_record_for_request
from tenants.decorators import tenant_view
from tenants.models import AuditAction, Membership
from vectors.index import IndexUnavailable

INDEX_DOWN = "The search index cannot be reached right now; please try again in a minute."


def _page(
    request: HttpRequest,
    membership: Membership,
    params: SearchParamsForm,
    *,
    results: list[SearchResult] | None = None,
    heading: str = "",
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    counts = status_counts(membership.tenant)
    context = {
        "tenant": membership.tenant,
        "membership": membership,
        "params": params,
        "image_form": extra.pop("image_form", None) or ImageQueryForm(),
        "results": results,
        "heading": heading,
        "counts": counts,
        "in_progress": counts["pending"] + counts["processing"],
        "total": sum(counts.values()),
        "min_score": params.cleaned_data.get("min_score") if params.is_bound and params.is_valid() else None,
        **extra,
    }
    return render(request, "search/search.html", context, status=status)


@require_http_methods(["GET", "POST"])
@tenant_view()
def search(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    params = SearchParamsForm(request.POST if request.method == "POST" else (request.GET or None))
    if not params.is_bound:
        return _page(request, membership, params)
    if not params.is_valid():
        return _page(request, membership, params, status=400)
    options = {
        "limit": params.cleaned_data["limit"],
        "filters": params.filters,
        "min_score": params.cleaned_data["min_score"],
    }
    try:
        if request.method == "POST":
            image_form = ImageQueryForm(request.POST, request.FILES)
            for refusal in early_refusals(request):
                image_form.add_error(None, refusal.reason)
            if not image_form.is_valid():
                return _page(request, membership, params, image_form=image_form, status=400)
            upload = image_form.cleaned_data["image"]
            try:
                results = search_by_image(tenant=tenant, file=upload, byte_size=upload.size or 0, **options)
            except ValidationError as exc:
                image_form.add_error("image", exc)
                return _page(request, membership, params, image_form=image_form, status=400)
            return _page(request, membership, params, results=results, heading=f"Pictures like {upload.name}")
        text = params.cleaned_data["q"]
        if not text:
            return _page(request, membership, params)
        results = search_by_text(tenant=tenant, text=text, **options)
        return _page(request, membership, params, results=results, heading=f"“{text}”")
    except IndexUnavailable:
        messages.error(request, INDEX_DOWN)
        return _page(request, membership, params, status=503)


@require_GET
@tenant_view()
def similar(request: HttpRequest, membership: Membership, asset_id: str) -> HttpResponse:
    asset = asset_for_tenant(membership.tenant, asset_id)
    params = SearchParamsForm(request.GET)
    if not params.is_valid():
        return _page(request, membership, params, status=400, similar_to=asset)
    heading = f"More like {asset.original_filename}"
    try:
        results = search_similar(
            tenant=membership.tenant,
            asset=asset,
            limit=params.cleaned_data["limit"],
            filters=params.filters,
            min_score=params.cleaned_data["min_score"],
        )
    except SimilarUnavailable as exc:
        messages.info(request, str(exc))
        return _page(request, membership, params, similar_to=asset, heading=heading, status=409)
    except IndexUnavailable:
        messages.error(request, INDEX_DOWN)
        return _page(request, membership, params, similar_to=asset, status=503)
    return _page(request, membership, params, results=results, heading=heading, similar_to=asset)


def metadata_form_for(asset: ImageAsset) -> ImageMetadataForm:
    return ImageMetadataForm(
        initial={"category": asset.category, "source": asset.source, "tags": ", ".join(asset.tags)}
    )


def _detail(
    request: HttpRequest, membership: Membership, asset: ImageAsset, form: ImageMetadataForm, status: int = 200
) -> HttpResponse:
    context = {"tenant": membership.tenant, "membership": membership, "asset": asset, "form": form}
    return render(request, "search/detail.html", context, status=status)


@require_GET
@tenant_view()
def detail(request: HttpRequest, membership: Membership, asset_id: str) -> HttpResponse:
    asset = asset_for_tenant(membership.tenant, asset_id)
    return _detail(request, membership, asset, metadata_form_for(asset))


@require_POST
@tenant_view(require="edit")
def edit(request: HttpRequest, membership: Membership, asset_id: str) -> HttpResponse:
    """The image's category, source and tags, validated as for an upload; the index has them at once."""
    asset = asset_for_tenant(membership.tenant, asset_id)
    form = ImageMetadataForm(request.POST)
    if not form.is_valid():
        return _detail(request, membership, asset, form, status=400)
    try:
        changed = asset_update_metadata(asset=asset, **form.cleaned_data)
    except IndexUnavailable:
        messages.error(request, f"{asset.original_filename} was not changed. {INDEX_DOWN}")
        return _detail(request, membership, asset, form, status=503)
    if changed:
        audit_record_for_request(
            request, tenant=membership.tenant, action=AuditAction.IMAGE_EDITED, target=asset.original_filename,
            detail={"image": str(asset.id), "changed": changed},
        )  # fmt: skip
        messages.success(request, f"Saved the {' and '.join(changed)} of {asset.original_filename}.")
    else:
        messages.info(request, "Nothing changed.")
    return redirect("search:detail", membership.tenant.slug, asset.id)


@require_POST
@tenant_view(require="delete")
def delete(request: HttpRequest, membership: Membership, asset_id: str) -> HttpResponse:
    asset = asset_for_tenant(membership.tenant, asset_id)
    name = asset.original_filename
    try:
        asset_delete(asset=asset)
    except IndexUnavailable:
        messages.error(request, f"{name} was not deleted. {INDEX_DOWN}")
        return redirect("search:detail", membership.tenant.slug, asset_id)
    messages.success(request, f"Deleted {name}.")
    return redirect("search:search", membership.tenant.slug)
