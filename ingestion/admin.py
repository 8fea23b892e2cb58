from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from ingestion.models import AssetStatus, ImageAsset, ReindexProgress, VectorSpace
from ingestion.services.deletion import tenant_delete
from ingestion.services.requeue import assets_requeue
from tenants.admin import TenantAdmin
from tenants.models import Tenant


@admin.register(ImageAsset)
class ImageAssetAdmin(admin.ModelAdmin[ImageAsset]):
    list_display = ["original_filename", "tenant", "status", "failure_reason", "byte_size", "created_at"]
    list_filter = ["status", "tenant", "image_format"]
    search_fields = ["original_filename", "sha256", "category", "source"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "id",
        "tenant",
        "uploaded_by",
        "file",
        "thumbnail",
        "sha256",
        "image_format",
        "byte_size",
        "width",
        "height",
        "status",
        "failure_reason",
        "attempts",
        "created_at",
        "updated_at",
        "embedded_at",
    ]
    actions = ["requeue"]

    @admin.action(description="Re-queue the selected images for embedding")
    def requeue(self, request: HttpRequest, queryset: QuerySet[ImageAsset]) -> None:
        count = assets_requeue(assets=queryset)
        self.message_user(request, f"{count} images queued for embedding again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.unregister(Tenant)


@admin.register(Tenant)
class TenantWithImagesAdmin(TenantAdmin):
    """The operators' tenant admin with what ingestion shows about a tenant: image counts by
    status, re-queueing its failed images, and deletion that removes its files and vectors too."""

    list_display = [*TenantAdmin.list_display, "ready", "in_progress", "failed"]
    actions = ["requeue_failed_images"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        queryset: QuerySet[Tenant] = (
            super()
            .get_queryset(request)
            .annotate(
                n_ready=Count("images", filter=Q(images__status=AssetStatus.READY)),
                n_progress=Count("images", filter=Q(images__status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING])),
                n_failed=Count("images", filter=Q(images__status=AssetStatus.FAILED)),
            )
        )
        return queryset

    @admin.display(description="Ready images", ordering="n_ready")
    def ready(self, tenant: Tenant) -> int:
        return tenant.n_ready  # type: ignore[attr-defined,no-any-return]

    @admin.display(description="Pending / processing", ordering="n_progress")
    def in_progress(self, tenant: Tenant) -> int:
        return tenant.n_progress  # type: ignore[attr-defined,no-any-return]

    @admin.display(description="Failed images", ordering="n_failed")
    def failed(self, tenant: Tenant) -> int:
        return tenant.n_failed  # type: ignore[attr-defined,no-any-return]

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        tenant_delete(tenant=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_delete(tenant=tenant)

    @admin.action(description="Re-queue failed images of the selected tenants")
    def requeue_failed_images(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        failed = ImageAsset.objects.filter(tenant__in=queryset, status=AssetStatus.FAILED)
        count = assets_requeue(assets=failed)
        self.message_user(request, f"{count} failed images queued for embedding again.", messages.SUCCESS)


class ReindexProgressInline(admin.TabularInline[ReindexProgress, VectorSpace]):
    model = ReindexProgress
    fields = ["tenant", "done", "total", "percent", "finished_at", "updated_at"]
    readonly_fields = ["tenant", "done", "total", "percent", "finished_at", "updated_at"]
    extra = 0
    can_delete = False

    @admin.display(description="%")
    def percent(self, progress: ReindexProgress) -> int:
        return progress.percent

    def has_add_permission(self, request: HttpRequest, obj: VectorSpace | None = None) -> bool:
        return False


@admin.register(VectorSpace)
class VectorSpaceAdmin(admin.ModelAdmin[VectorSpace]):
    """The models the index holds vectors of, and a build's progress per tenant. Read-only: models
    change with `manage.py reindex`, which builds before it switches."""

    list_display = ["model", "pretrained", "state", "progress", "created_at", "activated_at", "error"]
    readonly_fields = ["key", "model", "pretrained", "state", "created_at", "activated_at", "retired_at", "error"]
    inlines = [ReindexProgressInline]

    @admin.display(description="Tenants complete")
    def progress(self, space: VectorSpace) -> str:
        rows = space.progress.all()
        if not rows:
            return "—"
        return f"{sum(1 for r in rows if r.finished_at)}/{len(rows)}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[VectorSpace]:
        return super().get_queryset(request).prefetch_related("progress")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: VectorSpace | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: VectorSpace | None = None) -> bool:
        return False
