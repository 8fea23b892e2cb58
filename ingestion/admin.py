from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ingestion.models import ImageAsset
from ingestion.services import assets_requeue


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
