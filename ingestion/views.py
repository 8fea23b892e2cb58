from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.request import Request

from ingestion.forms import BulkActionForm, LabelVocabularyForm, LibraryParamsForm, UploadForm
from ingestion.imaging import ALLOWED_FORMATS
from ingestion.models import AssetStatus, BulkAction, BulkActionKind, ImageAsset
from ingestion.selectors import (
    BadCursor,
    asset_for_tenant,
    assets_by_ids,
    bulk_action_for_tenant,
    bulk_actions_for_tenant,
    library_page,
    recent_assets,
    status_counts,
    status_counts_of,
    tenant_storage_used,
)
from ingestion.services.bulk import bulk_action_start
from ingestion.services.labels import vocabulary_of, vocabulary_set
from ingestion.services.upload import UploadOutcome, assets_upload, upload_summary
from ingestion.uploadhandlers import early_refusals
from tenants.audit import audit_record_for_request
from tenants.decorators import tenant_view
from tenants.models import AuditAction, Membership, Tenant

LIBRARY_PAGE_SIZE = 60

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
        return _report(request, membership, upload_with_form(request, tenant=tenant, form=form, refused=refused))
    return _render_upload(request, membership, form)


def upload_with_form(
    request: HttpRequest | Request, *, tenant: Tenant, form: UploadForm, refused: list[UploadOutcome]
) -> list[UploadOutcome]:
    """What the page and the API do with a checked upload form: the upload service stores the files
    (none when the form was refused), and the upload is written to the audit log with its counts,
    the files refused while arriving (`refused`, first) included."""
    outcomes = list(refused)
    if form.is_valid():
        outcomes += assets_upload(
            tenant=tenant,
            uploaded_by=request.user,  # type: ignore[arg-type]
            files=form.uploaded_files,
            category=form.cleaned_data["category"],
            source=form.cleaned_data["source"],
            tags=form.cleaned_data["tags"],
        )
    if outcomes:
        target, detail = upload_summary(outcomes)
        audit_record_for_request(
            request, tenant=tenant, action=AuditAction.IMAGES_UPLOADED, target=target, detail=detail
        )
    return outcomes


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


def _library_context(membership: Membership, params: LibraryParamsForm) -> dict[str, Any]:
    """The grid, its counts and the links around it, for valid parameters."""
    tenant = membership.tenant
    images = ImageAsset.objects.for_tenant(tenant)
    matching = params.filters.apply(images)  # before the status filter: the counts per status
    counts = status_counts_of(matching)
    status = params.cleaned_data.get("status") or ""
    chosen = matching.filter(status=status) if status else matching
    page = library_page(
        chosen,
        sort=params.cleaned_data["sort"],
        size=LIBRARY_PAGE_SIZE,
        after=params.cleaned_data.get("after") or "",
        before=params.cleaned_data.get("before") or "",
    )
    query = {k: v for k, v in params.data.items() if k not in {"after", "before"} and v}
    return {
        "page": page,
        "status_chips": [(value, label, counts[value]) for value, label in AssetStatus.choices],
        "any_status": sum(counts.values()),
        "matching": counts[status] if status else sum(counts.values()),
        "all_images": images.count(),
        "query": urlencode(query),
        "filter_query": urlencode({k: v for k, v in query.items() if k not in {"status", "sort"}}),
        "filter_fields": {f"f-{k}": v for k, v in query.items() if k != "sort"},
        "status": status,
    }


@require_GET
@tenant_view()
def library(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Every image of the tenant as a grid: filtered (the search's filters and a status), sorted, a
    page at a time by keyset; editors select images and act on them."""
    action_form = BulkActionForm(initial={"key": uuid.uuid4().hex, "scope": "selected"})
    return _render_library(request, membership, LibraryParamsForm(request.GET), action_form)


def _render_library(
    request: HttpRequest,
    membership: Membership,
    params: LibraryParamsForm,
    action_form: BulkActionForm,
    status: int = 200,
) -> HttpResponse:
    tenant = membership.tenant
    context: dict[str, Any] = {
        "tenant": tenant,
        "membership": membership,
        "params": params,
        "action_form": action_form,
        "actions": bulk_actions_for_tenant(tenant),
        "page": None,
    }
    if params.is_valid():
        try:
            context.update(_library_context(membership, params))
        except BadCursor as exc:
            params.add_error(None, str(exc))
            status = 400
    else:
        status = 400
    return render(request, "ingestion/library.html", context, status=status)


# How a bulk action appears in the audit log (re-queueing changes no one's data: not logged).
BULK_AUDIT = {
    BulkActionKind.DELETE: AuditAction.IMAGE_DELETED,
    BulkActionKind.ADD_TAGS: AuditAction.IMAGE_EDITED,
    BulkActionKind.REMOVE_TAGS: AuditAction.IMAGE_EDITED,
    BulkActionKind.SET_CATEGORY: AuditAction.IMAGE_EDITED,
    BulkActionKind.SET_SOURCE: AuditAction.IMAGE_EDITED,
}


@require_POST
@tenant_view(require="edit")
def bulk_action_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Acts on the images selected, or on every image matching the filter (carried in `f-` fields);
    small actions finish here, larger ones in the background with their progress on the library."""
    tenant = membership.tenant
    form = BulkActionForm(request.POST)
    params = LibraryParamsForm({k.removeprefix("f-"): v for k, v in request.POST.items() if k.startswith("f-")})
    back_query = QueryDict(request.POST.get("back", ""))
    if not form.is_valid() or not params.is_valid():
        return _render_library(request, membership, LibraryParamsForm(back_query), form, status=400)
    data = form.cleaned_data
    kind = BulkActionKind(data["action"])
    if kind == BulkActionKind.DELETE and not membership.can_delete:
        raise PermissionDenied("Your role in this tenant may search but not delete images.")
    action, created = bulk_action_start(
        tenant=tenant,
        created_by=request.user,  # type: ignore[arg-type]
        key=data["key"],
        kind=kind,
        tags=data["action_tags"],
        value=data["action_value"],
        asset_ids=data["ids"] if data["scope"] == "selected" else [],
        filters=params.filters if data["scope"] == "filter" else None,
        status=params.cleaned_data.get("status") or "",
    )
    if created and kind in BULK_AUDIT:
        audit_record_for_request(
            request, tenant=tenant, action=BULK_AUDIT[kind], target=action.description,
            detail={"bulk_action": str(action.id), "images": action.total},
        )  # fmt: skip
    _announce(request, action)
    back = reverse("ingestion:library", args=[tenant.slug])
    return redirect(f"{back}?{back_query.urlencode()}" if back_query else back)


def _announce(request: HttpRequest, action: BulkAction) -> None:
    if action.status == "done":
        note = f" {action.failed} refused: {' '.join(action.errors[:3])}" if action.failed else ""
        messages.success(request, f"{action.description}: done, {action.changed} changed.{note}")
    elif action.status == "failed":
        messages.error(request, f"{action.description}: {' '.join(action.errors[-1:])}")
    else:
        messages.info(request, f"{action.description}: running in the background; its progress is below.")


def bulk_action_json(action: BulkAction) -> dict[str, Any]:
    return {
        "id": str(action.id),
        "description": action.description,
        "status": action.status,
        "status_label": action.get_status_display(),
        "total": action.total,
        "processed": action.processed,
        "changed": action.changed,
        "failed": action.failed,
        "errors": action.errors,
        "percent": action.percent,
        "final": action.is_final,
    }


@require_GET
@tenant_view()
def bulk_action_status(request: HttpRequest, membership: Membership, action_id: str) -> JsonResponse:
    """An action's progress, for the library page's script."""
    return JsonResponse(bulk_action_json(bulk_action_for_tenant(membership.tenant, action_id)))


@require_http_methods(["GET", "POST"])
@tenant_view(require="manage")
def labels(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The tenant's auto-tag vocabulary. Saving a changed one relabels every ready image in the
    background; its progress shows with the library's actions."""
    tenant = membership.tenant
    current = vocabulary_of(tenant)
    form = LabelVocabularyForm(request.POST or None, initial={"labels": ", ".join(current)})
    if request.method == "POST" and form.is_valid():
        action = vocabulary_set(tenant=tenant, labels=form.cleaned_data["labels"], updated_by=request.user)  # type: ignore[arg-type]
        if action is None:
            messages.info(request, "The vocabulary is unchanged.")
            return redirect("ingestion:labels", tenant.slug)
        audit_record_for_request(
            request, tenant=tenant, action=AuditAction.LABELS_CHANGED,
            target=", ".join(form.cleaned_data["labels"]) or "(none)", detail={"bulk_action": str(action.id)},
        )  # fmt: skip
        _announce(request, action)
        return redirect("ingestion:labels", tenant.slug)
    recent = bulk_actions_for_tenant(tenant, limit=1, kind=BulkActionKind.RELABEL)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "ingestion/labels.html",
        {"tenant": tenant, "form": form, "labels": current, "actions": list(recent),
         "min_score": settings.AUTO_TAG_MIN_SCORE},
        status=status,
    )  # fmt: skip
