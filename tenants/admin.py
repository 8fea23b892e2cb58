from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from tenants.audit import audit_record, token_label
from tenants.models import ApiToken, AuditAction, AuditEvent, Membership, Tenant
from tenants.ratelimit import client_address
from tenants.tokens import api_token_revoke


class MembershipInline(admin.TabularInline[Membership, Tenant]):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    """Tenants, their members and quotas. What a tenant holds (images, their counts, deleting them
    with the tenant) is added by the apps that own it: `ingestion.admin` extends this class."""

    list_display = ["name", "slug", "is_active", "quota"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["vector_uuid", "created_at"]
    inlines = [MembershipInline]

    @admin.display(description="Quota")
    def quota(self, tenant: Tenant) -> str:
        return filesizeformat(tenant.storage_quota_bytes)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A tenant's audit log goes with the tenant. Nobody may delete entries one by one (the log's
        admin refuses it), but that refusal must not stop an operator deleting the tenant itself."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed - {AuditEvent._meta.verbose_name}, protected


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
            if token.is_active:
                api_token_revoke(token=token)
                audit_record(
                    tenant=token.tenant, actor_user=request.user, action=AuditAction.API_KEY_REVOKED,
                    target=token_label(token), detail={"user": token.user.get_username(), "via": "admin"},
                    address=client_address(request),
                )  # fmt: skip
        self.message_user(request, f"{queryset.count()} tokens revoked.", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    """Every tenant's log for operators; read only: an audit log that can be edited proves nothing."""

    list_display = ["created_at", "tenant", "actor_username", "api_token_label", "action", "target", "address"]
    list_filter = ["action", "tenant"]
    search_fields = ["actor_username", "target", "tenant__slug", "address"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
