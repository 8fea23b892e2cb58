from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db.models import QuerySet

from ingestion.filters import MetadataFilters
from ingestion.models import (
    MAX_LABELS,
    MAX_TAG_LENGTH,
    AssetStatus,
    BulkActionKind,
    ImageAsset,
    parse_tags,
    validate_labels,
    validate_tags,
)
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


def clean_tag_list(raw: str, validate: Callable[[Any], None] = validate_tags) -> list[str]:
    """Tags (or labels, with `validate_labels`) as a person types them, normalised (`parse_tags`)
    and held to their limits."""
    tags = parse_tags(raw)
    try:
        validate(tags)
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
    # One more tag, as the image list has always taken it: every door reads both, so neither is ignored.
    tag = forms.CharField(required=False, max_length=50, widget=forms.HiddenInput)
    label = forms.CharField(
        required=False, max_length=2000, help_text="auto-tags: all of these, comma-separated", label="Auto-tags"
    )
    uploaded_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    uploaded_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_tags(self) -> list[str]:
        return parse_tags([*parse_tags(self.cleaned_data.get("tags") or ""), self.data.get("tag") or ""])

    def clean_label(self) -> list[str]:
        return parse_tags(self.cleaned_data.get("label") or "")

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
                    "label" if self.filters.labels and not self.filters.tags else "tags",
                    f"Too many filters: at most {allowed} conditions in all (category, source, each tag and "
                    "auto-tag, each date), "
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
            labels=tuple(data.get("label") or ()),
            uploaded_from=data.get("uploaded_from"),
            uploaded_to=data.get("uploaded_to"),
        )


class AssetFiltersForm(MetadataFiltersForm):
    """The metadata filters and an image's status: what the library page and the API's list filter by."""

    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *AssetStatus.choices])

    def apply(self, queryset: QuerySet[ImageAsset]) -> QuerySet[ImageAsset]:
        status = self.cleaned_data.get("status")
        return self.filters.apply(queryset.filter(status=status) if status else queryset)


LIBRARY_SORTS = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("name", "File name A–Z"),
    ("name_desc", "File name Z–A"),
    ("largest", "Largest first"),
    ("smallest", "Smallest first"),
]


class LibraryParamsForm(AssetFiltersForm):
    """The library page's query: the filters, the order, and where the page starts (a cursor)."""

    sort = forms.ChoiceField(required=False, choices=LIBRARY_SORTS)
    after = forms.CharField(required=False, max_length=300, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=300, widget=forms.HiddenInput)

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or "newest"


class UUIDListField(forms.Field):
    """Image ids, as checkboxes send them; anything that is not an id is refused by name."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[uuid.UUID]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        ids = []
        for raw in values:
            try:
                ids.append(uuid.UUID(str(raw)))
            except ValueError:
                raise forms.ValidationError(f"{str(raw)[:40]!r} is not an image id.", code="invalid") from None
        return list(dict.fromkeys(ids))


class LabelVocabularyForm(forms.Form):
    """A tenant's auto-tag vocabulary, as its owners and admins type it (page and API alike)."""

    labels = forms.CharField(
        required=False,
        max_length=MAX_LABELS * (MAX_TAG_LENGTH + 2),
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "receipt, screenshot, whiteboard, cat"}),
        help_text=f"Comma-separated or one per line, at most {MAX_LABELS}. Each image gets the labels it resembles.",
    )

    def clean_labels(self) -> list[str]:
        return clean_tag_list(self.cleaned_data.get("labels") or "", validate_labels)


class BulkActionForm(forms.Form):
    """An action on many images: the ones chosen on the page (`ids`), or all that match the
    library's filter (`scope=filter`, the filter carried in fields prefixed `f-`). `key` comes with
    the page and makes sending the same form twice one action."""

    MAX_CHOSEN = 1000

    # The harmless first: a form left as it came never deletes. Relabelling follows the auto-tag vocabulary page.
    action = forms.ChoiceField(
        choices=sorted(
            (c for c in BulkActionKind.choices if c[0] != BulkActionKind.RELABEL),
            key=lambda c: c[0] == BulkActionKind.DELETE,
        )
    )
    action_tags = forms.CharField(required=False, max_length=2000, label="Tags")
    action_value = forms.CharField(required=False, max_length=100, label="Category or source")
    scope = forms.ChoiceField(
        choices=[("selected", "The images selected"), ("filter", "Every image matching the filter")],
        initial="selected",
        widget=forms.RadioSelect,
    )
    ids = UUIDListField(required=False)
    key = forms.CharField(max_length=64, widget=forms.HiddenInput)

    def clean_action_tags(self) -> list[str]:
        return clean_tag_list(self.cleaned_data.get("action_tags") or "")

    def clean_ids(self) -> list[uuid.UUID]:
        ids: list[uuid.UUID] = self.cleaned_data.get("ids") or []
        if len(ids) > self.MAX_CHOSEN:
            raise forms.ValidationError(
                f"At most {self.MAX_CHOSEN} images one by one; choose “every image matching the filter” for more."
            )
        return ids

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") in {BulkActionKind.ADD_TAGS, BulkActionKind.REMOVE_TAGS} and not data.get("action_tags"):
            self.add_error("action_tags", "Give the tags to add or remove.")
        if data.get("scope") == "selected" and "ids" in data and not data["ids"]:
            self.add_error("ids", "Select at least one image, or choose every image matching the filter.")
        return data
