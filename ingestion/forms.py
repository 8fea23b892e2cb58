from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from ingestion.models import MAX_TAG_LENGTH, MAX_TAGS
from ingestion.services import parse_tags


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Hands every file to the service as it came: each is validated there on its own, so one bad
    file is reported by name without refusing the rest of the upload."""

    widget = MultipleFileInput

    def to_python(self, data: Any) -> list[UploadedFile[bytes]]:
        if not data:
            return []
        return [f for f in (data if isinstance(data, list | tuple) else [data]) if f is not None]

    def validate(self, value: list[UploadedFile[bytes]]) -> None:
        if not value:
            raise forms.ValidationError("Choose at least one image.", code="required")
        if len(value) > settings.UPLOAD_MAX_FILES:
            raise forms.ValidationError(f"At most {settings.UPLOAD_MAX_FILES} files per upload.", code="too_many")


class UploadForm(forms.Form):
    images = MultipleFileField(widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}))
    category = forms.CharField(max_length=100, required=False)
    source = forms.CharField(max_length=100, required=False)
    tags = forms.CharField(max_length=2000, required=False, help_text="Comma-separated, e.g. beach, summer")

    def clean_tags(self) -> list[str]:
        tags = parse_tags(self.cleaned_data.get("tags") or "")
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
        if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
            raise forms.ValidationError(f"Each tag may have at most {MAX_TAG_LENGTH} characters.")
        return tags
