from __future__ import annotations

from django import forms
from django.conf import settings

from ingestion.forms import MetadataFiltersForm
from search.services import MAX_QUERY_LENGTH, clamp_limit


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
