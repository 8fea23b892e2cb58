from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from ingestion.services import parse_tags
from search.filters import SearchFilters
from search.services import MAX_QUERY_LENGTH, clamp_limit


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
        return data

    @property
    def filters(self) -> SearchFilters:
        data = self.cleaned_data
        return SearchFilters(
            category=data.get("category") or "",
            source=data.get("source") or "",
            tags=tuple(data.get("tags") or ()),
            uploaded_from=data.get("uploaded_from"),
            uploaded_to=data.get("uploaded_to"),
        )


class SearchParamsForm(MetadataFiltersForm):
    """Every search parameter, for the pages and the API alike: a bad value is an error naming
    the parameter; a limit above the maximum is capped, not refused."""

    q = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH, strip=True, label="Describe the picture")
    limit = forms.IntegerField(required=False, min_value=1, label="Results")
    min_score = forms.FloatField(required=False, min_value=-1.0, max_value=1.0, label="Minimum score")

    def clean_limit(self) -> int:
        return clamp_limit(self.cleaned_data.get("limit"))

    @property
    def max_limit(self) -> int:
        return int(settings.SEARCH_MAX_LIMIT)


class ImageQueryForm(forms.Form):
    """The query picture, for the page and the API alike; it is validated as an upload is, never stored."""

    image = forms.FileField(
        label="Search with a picture",
        allow_empty_file=True,
        error_messages={"required": "Send the query picture as a file named 'image'."},
    )
