from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ingestion.forms import ImageMetadataForm
from ingestion.models import ImageAsset
from ingestion.selectors import asset_for_tenant, status_counts
from ingestion.services.deletion import asset_delete
from ingestion.services.editing import asset_update_metadata
from ingestion.services.near_duplicates import near_duplicate_group, near_duplicate_groups
from ingestion.uploadhandlers import early_refusals
from search.forms import SORT_LABELS, ImageQueryForm, SearchPageParamsForm, SearchParamsForm
from search.query_pictures import KeptPicture, picture_keep, picture_recall
from search.services import (
    EmptyQuery,
    SearchPage,
    SimilarUnavailable,
    embed_query_picture,
    search_by_picture,
    search_by_text,
    search_similar,
)
from tenants.audit import audit_record_for_request
from tenants.decorators import tenant_view
from tenants.models import AuditAction, Membership
from vectors.index import IndexUnavailable

INDEX_DOWN = "The search index cannot be reached right now; please try again in a minute."


def _link(base: QueryDict, **changes: object) -> str:
    """A query string with every parameter of this search, `changes` applied (None removes one)."""
    query = base.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    pairs = [(key, value) for key, values in query.lists() for value in values if value != ""]
    return "?" + urlencode(pairs)


def _page(
    request: HttpRequest,
    membership: Membership,
    params: SearchParamsForm,
    *,
    found: SearchPage | None = None,
    heading: str = "",
    status: int = 200,
    base: QueryDict | None = None,
    picture: KeptPicture | None = None,
    **extra: Any,
) -> HttpResponse:
    counts = status_counts(membership.tenant)
    base = (request.GET if base is None else base).copy()
    base.pop("page", None)
    valid = params.is_bound and params.is_valid()
    raw = params.data if params.is_bound else QueryDict()
    getlist = getattr(raw, "getlist", None)
    context = {
        "tenant": membership.tenant,
        "membership": membership,
        "params": params,
        "image_form": extra.pop("image_form", None) or ImageQueryForm(),
        "found": found,
        "results": found.results if found is not None else None,
        "heading": heading,
        "counts": counts,
        "in_progress": counts["pending"] + counts["processing"],
        "total": sum(counts.values()),
        "min_score": params.cleaned_data.get("min_score") if valid else None,
        "q_values": [v for v in getlist("q") if v.strip()] if getlist else [],
        "not_values": [v for v in getlist("not") if v.strip()] if getlist else [],
        "picture": picture,
        **extra,
    }
    if found is not None:
        context["sort_links"] = [
            (label, _link(base, sort=None if key == "score" else key), key == found.sort)
            for key, label in SORT_LABELS.items()
        ]
        context["previous_url"] = _link(base, page=found.page - 1) if found.has_previous else None
        context["next_url"] = _link(base, page=found.page + 1) if found.has_next else None
        context["first_rank"] = (found.page - 1) * found.limit + 1
        context["last_rank"] = (found.page - 1) * found.limit + len(found.results)
    if picture is not None:
        context["without_picture_url"] = _link(base, picture=None)
    return render(request, "search/search.html", context, status=status)


def _words(params: SearchParamsForm) -> str:
    heading = " + ".join(f"“{text}”" for text in params.texts)
    if params.negatives:
        heading += " not " + ", ".join(f"“{text}”" for text in params.negatives)
    return heading


@require_http_methods(["GET", "POST"])
@tenant_view()
def search(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Text on a GET; a dropped picture is POSTed, embedded once and kept in the session, so that
    the links of its results (pages, orders) are GETs carrying `picture=<token>`."""
    tenant = membership.tenant
    data = request.POST if request.method == "POST" else (request.GET or None)
    params = SearchPageParamsForm(data)
    if not params.is_bound:
        return _page(request, membership, params)
    if not params.is_valid():
        return _page(request, membership, params, status=400)
    options = {"texts": params.texts, "negatives": params.negatives, **params.options}
    image_weight = params.cleaned_data["image_weight"]
    picture: KeptPicture | None = None
    base: QueryDict = request.GET
    try:
        if request.method == "POST":
            image_form = ImageQueryForm(request.POST, request.FILES)
            for refusal in early_refusals(request):
                image_form.add_error(None, refusal.reason)
            if not image_form.is_valid():
                return _page(request, membership, params, image_form=image_form, status=400)
            upload = image_form.cleaned_data["image"]
            try:
                embedded = embed_query_picture(file=upload, byte_size=upload.size or 0)
            except ValidationError as exc:
                image_form.add_error("image", exc)
                return _page(request, membership, params, image_form=image_form, status=400)
            picture = picture_keep(request, tenant=tenant, name=upload.name or "picture", picture=embedded)
            posted = request.POST.copy()
            posted.pop("csrfmiddlewaretoken", None)
            posted["picture"] = picture.token
            base = posted
        elif params.cleaned_data["picture"]:
            picture = picture_recall(request, tenant=tenant, token=params.cleaned_data["picture"])
            if picture is None:
                params.add_error("picture", "That query picture is no longer kept; drop it again.")
                return _page(request, membership, params, status=400)
        if picture is not None:
            found = search_by_picture(tenant=tenant, picture=picture.vector, image_weight=image_weight, **options)
            heading = f"Pictures like {picture.name}" + (f" and {_words(params)}" if params.texts else "")
            if params.negatives and not params.texts:
                heading += _words(params)
            return _page(request, membership, params, found=found, heading=heading, base=base, picture=picture)
        if not params.texts:
            if params.negatives:
                params.add_error("q", "Describe what the picture shows, not only what it must not show.")
                return _page(request, membership, params, status=400)
            return _page(request, membership, params)
        found = search_by_text(tenant=tenant, text=options.pop("texts"), **options)
        return _page(request, membership, params, found=found, heading=_words(params))
    except EmptyQuery as exc:
        params.add_error("not", str(exc))
        return _page(request, membership, params, status=400, picture=picture)
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
    heading = f"More like {asset.original_filename}" + (f" and {_words(params)}" if params.texts else "")
    if params.negatives and not params.texts:
        heading += _words(params)
    try:
        found = search_similar(
            tenant=membership.tenant, asset=asset, texts=params.texts, negatives=params.negatives,
            image_weight=params.cleaned_data["image_weight"], **params.options,
        )  # fmt: skip
    except SimilarUnavailable as exc:
        messages.info(request, str(exc))
        return _page(request, membership, params, similar_to=asset, heading=heading, status=409)
    except EmptyQuery as exc:
        params.add_error("not", str(exc))
        return _page(request, membership, params, similar_to=asset, status=400)
    except IndexUnavailable:
        messages.error(request, INDEX_DOWN)
        return _page(request, membership, params, similar_to=asset, status=503)
    return _page(request, membership, params, found=found, heading=heading, similar_to=asset)


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
    audit_record_for_request(
        request,
        tenant=membership.tenant,
        action=AuditAction.IMAGE_DELETED,
        target=name,
        detail={"image": str(asset_id)},
    )
    messages.success(request, f"Deleted {name}.")
    return redirect("search:search", membership.tenant.slug)


@require_GET
@tenant_view()
def duplicates(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The tenant's near-duplicate groups, largest first, each with keep-one/delete-the-others."""
    groups = near_duplicate_groups(membership.tenant)
    context = {"tenant": membership.tenant, "membership": membership, "groups": groups}
    return render(request, "search/duplicates.html", context)


@require_POST
@tenant_view(require="delete")
def duplicates_keep(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Keeps the chosen image and deletes the rest of its group, as the group stands now."""
    keep = asset_for_tenant(membership.tenant, request.POST.get("keep", ""))
    others = [asset for asset in near_duplicate_group(membership.tenant, keep) if asset.id != keep.id]
    deleted = 0
    try:
        for asset in others:
            asset_delete(asset=asset)
            deleted += 1
    except IndexUnavailable:
        messages.error(request, f"Deleted {deleted} of {len(others)}. {INDEX_DOWN}")
        return redirect("search:duplicates", membership.tenant.slug)
    plural = "s" if deleted != 1 else ""
    messages.success(request, f"Kept {keep.original_filename}; deleted {deleted} near-duplicate{plural}.")
    return redirect("search:duplicates", membership.tenant.slug)
