from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File

from ingestion.filters import MetadataFilters
from ingestion.models import parse_tags, validate_tags
from vectors.layout import MAX_WHERE_PREDICATES, where_predicates


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Hands every file to the service as it came: each is validated there on its own, so one bad
    file is reported by name without refusing the rest of the upload."""

    widget = MultipleFileInput

    def to_python(self, data: Any) -> list[File[bytes]]:
        if not data:
            return []
        return [f for f in (data if isinstance(data, list | tuple) else [data]) if f is not None]

    def validate(self, value: list[File[bytes]]) -> None:
        if not value:
            raise forms.ValidationError("No file was submitted: choose at least one image.", code="required")
        if len(value) > settings.UPLOAD_MAX_FILES:
            raise forms.ValidationError(f"At most {settings.UPLOAD_MAX_FILES} files per upload.", code="too_many")


class ImageMetadataForm(forms.Form):
    """An image's category, source and tags, with one set of rules wherever they are given: with an
    upload (UploadForm adds the files), and when an image is edited, on its page and through
    `PATCH /api/v1/images/{id}/` (this form alone)."""

    category = forms.CharField(max_length=100, required=False)
    source = forms.CharField(max_length=100, required=False)
    tags = forms.CharField(max_length=2000, required=False, help_text="Comma-separated, e.g. beach, summer")

    def clean_tags(self) -> list[str]:
        return clean_tag_list(self.cleaned_data.get("tags") or "")


def clean_tag_list(raw: str) -> list[str]:
    """Tags as a person types them, normalised (`parse_tags`) and held to the image's limits."""
    tags = parse_tags(raw)
    try:
        validate_tags(tags)
    except ValidationError as exc:
        raise forms.ValidationError(exc.messages) from exc
    return tags


class UploadForm(ImageMetadataForm):
    """One way in for an upload: the page (files in `images`), the API (files in `file`) and
    `import_images` (metadata only; it hands the files one by one) validate with this form and call
    `ingestion.services.upload.assets_upload`, so the same bad input gets the same error, field and
    words through every door."""

    images = MultipleFileField(widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}))

    def __init__(self, *args: Any, file_field: str | None = "images", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file_field = file_field
        files = self.fields.pop("images")
        if file_field is not None:
            self.fields = {file_field: files, **self.fields}  # type: ignore[assignment]

    @property
    def uploaded_files(self) -> list[File[bytes]]:
        return list(self.cleaned_data.get(self.file_field, [])) if self.file_field else []


class MetadataFiltersForm(forms.Form):
    """The metadata filters, parsed once for every door that takes them: search on the pages and
    the API, and the API's image list."""

    category = forms.CharField(required=False, max_length=100)
    source = forms.CharField(required=False, max_length=100)
    tags = forms.CharField(required=False, max_length=2000, help_text="all of these, comma-separated")
    uploaded_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    uploaded_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data.get("tags") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("uploaded_from"), data.get("uploaded_to")
        if start and end and start > end:
            self.add_error("uploaded_to", "The end date is before the start date.")
        if not self.errors:
            # The index takes at most MAX_WHERE_PREDICATES conditions, its tenant condition among them.
            allowed = MAX_WHERE_PREDICATES - 1
            given = where_predicates(self.filters.to_where())
            if given > allowed:
                self.add_error(
                    "tags",
                    f"Too many filters: at most {allowed} conditions in all (category, source, each tag, each date), "
                    f"not {given}.",
                )
        return data

    @property
    def filters(self) -> MetadataFilters:
        data = self.cleaned_data
        return MetadataFilters(
            category=data.get("category") or "",
            source=data.get("source") or "",
            tags=tuple(data.get("tags") or ()),
            uploaded_from=data.get("uploaded_from"),
            uploaded_to=data.get("uploaded_to"),
        )
