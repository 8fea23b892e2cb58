from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services import assets_requeue, tenant_delete
from tenants.models import ApiToken, Membership, Tenant
from tenants.tokens import api_token_revoke


class MembershipInline(admin.TabularInline[Membership, Tenant]):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    list_display = ["name", "slug", "is_active", "quota", "ready", "in_progress", "failed"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["vector_uuid", "created_at"]
    inlines = [MembershipInline]
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

    @admin.display(description="Quota")
    def quota(self, tenant: Tenant) -> str:
        return filesizeformat(tenant.storage_quota_bytes)

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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "tenant", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username", "tenant__slug"]
    readonly_fields = ["tenant", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are shown once: made on the Tokens page or with create_api_token

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"{queryset.count()} tokens revoked.", messages.SUCCESS)
