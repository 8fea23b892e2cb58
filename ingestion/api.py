from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion.forms import AssetFiltersForm, ImageMetadataForm, LabelVocabularyForm, UploadForm
from ingestion.imaging import ALLOWED_FORMATS
from ingestion.models import (
    MAX_LABELS,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    AssetStatus,
    BulkActionKind,
    ImageAsset,
    LabelVocabulary,
)
from ingestion.selectors import bulk_actions_for_tenant
from ingestion.services.deletion import asset_delete
from ingestion.services.editing import asset_update_metadata
from ingestion.services.labels import vocabulary_of, vocabulary_set
from ingestion.services.upload import UploadOutcome
from ingestion.uploadhandlers import early_refusals
from ingestion.views import original_file_response, stored_file_response, upload_with_form
from tenants.api import Need, TenantScopedMixin
from tenants.audit import audit_record_for_request
from tenants.models import AuditAction
from tenants.schema import ERROR


class ImageLinksSerializer(serializers.Serializer[Any]):
    self = serializers.CharField(help_text="this image in the API")
    file = serializers.CharField(help_text="the stored original")
    thumbnail = serializers.CharField()
    similar = serializers.CharField(help_text="more like this")
    page = serializers.CharField(help_text="the image's page in the browser")


class ImageSerializer(serializers.ModelSerializer[ImageAsset]):
    filename = serializers.CharField(source="original_filename", read_only=True)
    format = serializers.CharField(source="image_format", read_only=True)  # type: ignore[assignment]
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    labels = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="auto-tags: the labels of the tenant's vocabulary the picture matches, best first",
    )
    links = serializers.SerializerMethodField()

    class Meta:
        model = ImageAsset
        fields = [
            "id", "status", "failure_reason", "filename", "category", "source", "tags", "labels", "width", "height",
            "byte_size", "format", "created_at", "embedded_at", "links",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(ImageLinksSerializer)
    def get_links(self, asset: ImageAsset) -> dict[str, str]:
        slug = asset.tenant.slug
        return {
            "self": reverse("api:image-detail", args=[asset.id]),
            "file": reverse("api:image-file", args=[asset.id]),
            "thumbnail": reverse("api:image-thumbnail", args=[asset.id]),
            "similar": reverse("api:image-similar", args=[asset.id]),
            "page": reverse("search:detail", args=[slug, asset.id]),
        }


class DuplicateImageSerializer(ImageSerializer):
    """The image already there, and what this upload added to it: its tags join the image's, its
    category and source fill empty ones; nothing is overwritten."""

    merged = serializers.SerializerMethodField()

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "merged"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=["tags", "category", "source"])))
    def get_merged(self, asset: ImageAsset) -> list[str]:
        return list(self.context.get("merged", []))


class UploadResultSerializer(serializers.Serializer[Any]):
    filename = serializers.CharField()
    status = serializers.ChoiceField(choices=[201, 200, 400], help_text="what a single upload of this file answers")
    image = DuplicateImageSerializer(allow_null=True, help_text="the stored image (null when refused)")
    error = serializers.CharField(allow_null=True, help_text="why it was refused (null when stored)")


class BulkUploadSerializer(serializers.Serializer[Any]):
    results = UploadResultSerializer(many=True)


def _upload_result(outcome: UploadOutcome) -> dict[str, Any]:
    if outcome.error or outcome.asset is None:
        return {"filename": outcome.filename, "status": 400, "image": None, "error": outcome.error or "Refused."}
    image = DuplicateImageSerializer(outcome.asset, context={"merged": outcome.merged}).data
    return {"filename": outcome.filename, "status": 200 if outcome.duplicate else 201, "image": image, "error": None}


class ImageUploadSerializer(serializers.Serializer[Any]):
    """The upload request as the schema shows it; `ingestion.forms.UploadForm` validates it, as on the page."""

    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        help_text="JPEG, PNG, WebP or GIF; one part, or several (up to UPLOAD_MAX_FILES) for a bulk upload",
    )
    category = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    source = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")  # type: ignore[assignment]
    tags = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", help_text="comma-separated"
    )


class ImageEditSerializer(serializers.Serializer[Any]):
    """The edit as the schema shows it; `ingestion.forms.ImageMetadataForm` validates it, as on the
    image's page and for an upload. A field left out keeps its value."""

    category = serializers.CharField(required=False, allow_blank=True, max_length=100)
    source = serializers.CharField(required=False, allow_blank=True, max_length=100)  # type: ignore[assignment]
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH),
        required=False,
        max_length=MAX_TAGS,
        help_text="the image's tags, replacing the ones it has (normalised: trimmed, lower-cased, de-duplicated)",
    )


def edit_form(asset: ImageAsset, data: Any) -> ImageMetadataForm:
    """A PATCH body as the edit form's data: each field given replaces the image's, the others keep it."""
    if not isinstance(data, dict):
        raise DRFValidationError({"detail": "Send a JSON object with category, source and/or tags."})
    values: dict[str, str] = {"category": asset.category, "source": asset.source, "tags": ",".join(asset.tags)}
    errors: dict[str, list[str]] = {}
    for name in values:
        if name not in data:
            continue
        value = data[name]
        if name == "tags" and isinstance(value, list) and all(isinstance(tag, str) for tag in value):
            value = ",".join(value)
        if not isinstance(value, str):
            errors[name] = ["Give a list of words." if name == "tags" else "Give a text."]
            continue
        values[name] = value
    if errors:
        raise DRFValidationError(errors)
    return ImageMetadataForm(values)


class ImageListParams(AssetFiltersForm):
    """The list's filters: the library page's, `tag` and `tags` both read as in search."""


class IndexDown(APIException):
    status_code = 503
    default_detail = "The search index cannot be reached right now; retry shortly."
    default_code = "index_unavailable"


INDEX_DOWN_RESPONSE = OpenApiResponse(ERROR, description="The search index cannot be reached; retry shortly.")


def form_errors(form: forms.Form) -> DRFValidationError:
    return DRFValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})


class ImagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ImageViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ImageAsset],
):
    """The tenant's images. An id of another tenant is a 404, exactly as a missing one."""

    queryset = ImageAsset.objects.select_related("tenant").order_by("-created_at")
    serializer_class = ImageSerializer
    pagination_class = ImagePagination
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    lookup_value_converter = "uuid"

    def required_permission(self, request: Request) -> Need:
        if request.method == "POST" and self.action == "create":
            return "upload"
        if request.method == "PATCH":
            return "edit"
        if request.method == "DELETE":
            return "delete"
        return None

    def throttle_cost(self, request: Request) -> int:
        """An upload counts one per file sent, those refused while arriving included."""
        if request.method == "POST" and self.action == "create":
            return len(request.FILES.getlist("file")) + len(early_refusals(request._request))
        return 1

    def filter_queryset(self, queryset: Any) -> Any:
        if self.action != "list":
            return queryset
        params = ImageListParams(self.request.query_params)
        if not params.is_valid():
            raise form_errors(params)
        return params.apply(queryset)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=AssetStatus.values),
            OpenApiParameter("category", OpenApiTypes.STR),
            OpenApiParameter("source", OpenApiTypes.STR),
            OpenApiParameter("tag", OpenApiTypes.STR),
            OpenApiParameter("label", OpenApiTypes.STR, description="auto-tags, comma-separated; every one must match"),
            OpenApiParameter("uploaded_from", OpenApiTypes.DATE),
            OpenApiParameter("uploaded_to", OpenApiTypes.DATE),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request={
            "multipart/form-data": ImageUploadSerializer,
            "application/x-www-form-urlencoded": ImageUploadSerializer,
        },
        responses={
            201: ImageSerializer,
            200: DuplicateImageSerializer,
            207: OpenApiResponse(BulkUploadSerializer, description="several `file` parts: one result per file"),
        },
    )
    def create(self, request: Request) -> Response:
        """Uploads one image (201). The same bytes again answer 200 with the image already there, to
        which this upload's tags, category and source were added (`merged` says which).

        Several `file` parts (up to UPLOAD_MAX_FILES) answer 207 with one result per file, in the
        order sent (files refused while arriving, for their size, first): each with the status a
        single upload of it would have had (201, 200 or 400) and the image or the reasons. A refused
        file stores nothing and does not stop the others; the category, source and tags apply to all."""
        form = UploadForm(request.data, request.FILES, file_field="file")  # reading them runs the upload handlers
        refused = early_refusals(request._request)
        several = len(refused) + len(request.FILES.getlist("file")) > 1
        if refused and not several:
            raise DRFValidationError({"file": [refused[0].reason]})
        if not form.is_valid() and not (several and set(form.errors) == {"file"} and refused):
            raise form_errors(form)
        outcomes = upload_with_form(
            request,
            tenant=self.tenant,
            form=form,
            refused=[UploadOutcome(filename=r.filename, error=r.reason) for r in refused],
        )
        if several:
            return Response({"results": [_upload_result(o) for o in outcomes]}, status=status.HTTP_207_MULTI_STATUS)
        [outcome] = outcomes
        if outcome.error or outcome.asset is None:
            raise DRFValidationError({"file": [outcome.error or "The file was refused."]})
        if outcome.duplicate:
            merged = DuplicateImageSerializer(outcome.asset, context={"merged": outcome.merged})
            return Response(merged.data, status=status.HTTP_200_OK)
        return Response(ImageSerializer(outcome.asset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"application/json": ImageEditSerializer},
        responses={200: ImageSerializer, 503: INDEX_DOWN_RESPONSE},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Changes the image's category, source and/or tags, validated as for an upload. The index has
        the new values at once (a filter on a new tag finds the image, on a removed one no longer
        does); nothing is embedded again. Chroma out of reach changes nothing (503)."""
        asset = self.get_object()
        form = edit_form(asset, request.data)
        if not form.is_valid():
            raise form_errors(form)
        changed = asset_update_metadata(asset=asset, **form.cleaned_data)
        if changed:
            audit_record_for_request(
                request, tenant=self.tenant, action=AuditAction.IMAGE_EDITED, target=asset.original_filename,
                detail={"image": str(asset.id), "changed": changed},
            )  # fmt: skip
        return Response(ImageSerializer(asset).data)

    @extend_schema(responses={204: None, 503: INDEX_DOWN_RESPONSE})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Deletes the image: its vector, row, file and thumbnail."""
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: ImageAsset) -> None:
        name, image = instance.original_filename, str(instance.id)
        asset_delete(asset=instance)  # the vector goes first: Chroma out of reach deletes nothing (503)
        audit_record_for_request(
            self.request, tenant=self.tenant, action=AuditAction.IMAGE_DELETED, target=name, detail={"image": image}
        )

    @extend_schema(responses={(200, media_type): OpenApiTypes.BINARY for _, media_type in ALLOWED_FORMATS.values()})
    @action(detail=True, methods=["get"])
    def file(self, request: Request, pk: str | None = None) -> FileResponse:
        return original_file_response(self.get_object())

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def thumbnail(self, request: Request, pk: str | None = None) -> FileResponse:
        return stored_file_response(self.get_object().thumbnail.name, "image/jpeg")


class RelabelSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="pending, running, done or failed")
    total = serializers.IntegerField(help_text="ready images to label again")
    processed = serializers.IntegerField()
    changed = serializers.IntegerField(help_text="images whose labels changed")


class LabelVocabularySerializer(serializers.Serializer[Any]):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH),
        max_length=MAX_LABELS,
        help_text="the tenant's auto-tag vocabulary; each ready image gets the labels it resembles",
    )
    min_score = serializers.FloatField(read_only=True, help_text="AUTO_TAG_MIN_SCORE: the similarity a label needs")
    relabel = RelabelSerializer(
        read_only=True, allow_null=True, help_text="the latest relabelling of the tenant's images, with its progress"
    )


class LabelVocabularyView(TenantScopedMixin, APIView):
    """The tenant's auto-tag vocabulary. Every member may read it; owners and admins (with an
    `admin` key) replace it, which relabels every ready image in the background from the stored
    vectors (`relabel` reports the progress)."""

    queryset = LabelVocabulary.objects.all()

    def required_permission(self, request: Request) -> Need:
        return "manage" if request.method == "PUT" else None

    def _answer(self, status_code: int = status.HTTP_200_OK) -> Response:
        latest = bulk_actions_for_tenant(self.tenant, limit=1, kind=BulkActionKind.RELABEL).first()
        relabel = None
        if latest is not None:
            relabel = {key: getattr(latest, key) for key in ("id", "status", "total", "processed", "changed")}
        body = {"labels": vocabulary_of(self.tenant), "min_score": settings.AUTO_TAG_MIN_SCORE, "relabel": relabel}
        return Response(LabelVocabularySerializer(body).data, status=status_code)

    @extend_schema(responses={200: LabelVocabularySerializer})
    def get(self, request: Request) -> Response:
        return self._answer()

    @extend_schema(request=LabelVocabularySerializer, responses={200: LabelVocabularySerializer})
    def put(self, request: Request) -> Response:
        """Replaces the vocabulary (`labels`: a list of words, normalised like tags)."""
        data = request.data
        raw = data.get("labels") if isinstance(data, Mapping) else None
        if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
            raise DRFValidationError({"labels": ["Give a list of words."]})
        if any("," in label for label in raw):
            raise DRFValidationError({"labels": ["A label may not contain a comma."]})
        form = LabelVocabularyForm({"labels": "\n".join(raw)})
        if not form.is_valid():
            raise form_errors(form)
        action = vocabulary_set(tenant=self.tenant, labels=form.cleaned_data["labels"], updated_by=self.membership.user)
        if action is not None:
            audit_record_for_request(
                request, tenant=self.tenant, action=AuditAction.LABELS_CHANGED,
                target=", ".join(form.cleaned_data["labels"]) or "(none)", detail={"bulk_action": str(action.id)},
            )  # fmt: skip
        return self._answer()
