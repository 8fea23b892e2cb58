from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from ingestion.forms import UploadForm
from ingestion.imaging import ALLOWED_FORMATS
from ingestion.models import AssetStatus, ImageAsset
from ingestion.selectors import asset_for_tenant, assets_by_ids, recent_assets, status_counts, tenant_storage_used
from ingestion.services.upload import UploadOutcome, assets_upload
from ingestion.uploadhandlers import early_refusals
from tenants.decorators import tenant_view
from tenants.models import Membership

# What an image is waiting for, in words, while the upload page watches it.
STATUS_DETAILS: dict[str, str] = {
    AssetStatus.PENDING: "Stored; waiting for the embedder to take it.",
    AssetStatus.PROCESSING: "Being embedded now.",
    AssetStatus.READY: "Searchable.",
}


def asset_json(asset: ImageAsset) -> dict[str, Any]:
    slug = asset.tenant.slug
    return {
        "id": str(asset.id),
        "filename": asset.original_filename,
        "status": asset.status,
        "status_label": asset.get_status_display(),
        "failure_reason": asset.failure_reason,
        "detail": STATUS_DETAILS.get(asset.status, "") or asset.failure_reason,
        "thumbnail_url": reverse("ingestion:thumbnail", args=[slug, asset.id]),
    }


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@tenant_view()
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The tenant's front page: its images by status, storage used and the latest uploads."""
    tenant = membership.tenant
    return render(
        request,
        "ingestion/dashboard.html",
        {
            "tenant": tenant,
            "membership": membership,
            "counts": status_counts(tenant),
            "storage_used": tenant_storage_used(tenant),
            "assets": recent_assets(tenant, limit=24),
        },
    )


@require_http_methods(["GET", "POST"])
@tenant_view(require="upload")
def upload(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    form = UploadForm(request.POST or None, request.FILES or None)
    refused = [UploadOutcome(filename=r.filename, error=r.reason) for r in early_refusals(request)]
    if request.method == "POST":
        if refused and not request.FILES:
            return _report(request, membership, refused)
        if not form.is_valid():
            if _wants_json(request):
                return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
            return _render_upload(request, membership, form, status=400)
        outcomes = refused + assets_upload(
            tenant=tenant,
            uploaded_by=request.user,  # type: ignore[arg-type]
            files=form.uploaded_files,
            category=form.cleaned_data["category"],
            source=form.cleaned_data["source"],
            tags=form.cleaned_data["tags"],
        )
        return _report(request, membership, outcomes)
    return _render_upload(request, membership, form)


def _render_upload(request: HttpRequest, membership: Membership, form: UploadForm, status: int = 200) -> HttpResponse:
    tenant = membership.tenant
    return render(
        request,
        "ingestion/upload.html",
        {
            "tenant": tenant,
            "membership": membership,
            "form": form,
            "assets": recent_assets(tenant),
            "max_files": settings.UPLOAD_MAX_FILES,
        },
        status=status,
    )


def _report(request: HttpRequest, membership: Membership, outcomes: list[UploadOutcome]) -> HttpResponse:
    """The outcome of each file: JSON for the page's script, messages and a redirect without it.
    When every file was refused the answer is a 400 (the page itself, with the reasons, without
    JavaScript); one stored file makes it a success that lists the refusals beside it."""
    tenant = membership.tenant
    created = any(o.asset and not o.duplicate for o in outcomes)
    all_refused = all(o.error for o in outcomes)
    if _wants_json(request):
        rows = [
            {
                "filename": o.filename,
                "error": o.error,
                "duplicate": o.duplicate,
                "merged": o.merged,
                "image": asset_json(o.asset) if o.asset else None,
            }
            for o in outcomes
        ]
        return JsonResponse({"results": rows}, status=201 if created else 400 if all_refused else 200)
    for outcome in outcomes:
        if outcome.error:
            messages.error(request, f"{outcome.filename}: refused. {outcome.error}")
        elif outcome.duplicate and outcome.asset:
            note = f"; {outcome.merged_note}" if outcome.merged else ""
            messages.info(request, f"{outcome.filename}: already uploaded as {outcome.asset.original_filename}{note}.")
    accepted = sum(1 for o in outcomes if o.asset and not o.duplicate)
    if accepted:
        messages.success(request, f"{accepted} image{'s' if accepted != 1 else ''} uploaded; embedding follows.")
    if all_refused:
        return _render_upload(request, membership, UploadForm(), status=400)
    return redirect("ingestion:upload", tenant.slug)


@require_GET
@tenant_view()
def asset_status(request: HttpRequest, membership: Membership) -> JsonResponse:
    ids = [i for i in request.GET.get("ids", "").split(",") if i][:500]
    assets = assets_by_ids(membership.tenant, ids).select_related("tenant")
    return JsonResponse({"images": [asset_json(asset) for asset in assets]})


def stored_file_response(name: str | None, content_type: str, *, filename: str = "") -> FileResponse:
    """A stored file; `filename` is the name a browser saves it under (else the storage name)."""
    if not name or not default_storage.exists(name):
        raise Http404("No such image.")
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    # Should a browser ever render a stored file as a document, nothing in it may run or load.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def original_file_response(asset: ImageAsset) -> FileResponse:
    """The original as uploaded, under the name it was uploaded with: FileResponse writes the
    Content-Disposition header the RFC 6266 way, so quotes, semicolons and non-ASCII names arrive
    intact (filename*=utf-8'' for the latter) and cannot add parameters of their own."""
    return stored_file_response(
        asset.file.name, ALLOWED_FORMATS[asset.image_format][1], filename=asset.original_filename
    )


@require_GET
@tenant_view()
def thumbnail(request: HttpRequest, membership: Membership, asset_id: str) -> FileResponse:
    asset = asset_for_tenant(membership.tenant, asset_id)
    return stored_file_response(asset.thumbnail.name, "image/jpeg")


@require_GET
@tenant_view()
def original(request: HttpRequest, membership: Membership, asset_id: str) -> FileResponse:
    return original_file_response(asset_for_tenant(membership.tenant, asset_id))
