from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings

from ingestion.forms import MetadataFiltersForm
from search.services import MAX_QUERY_LENGTH, MAX_QUERY_PARTS, SORTS, WINDOW, clamp_limit

SORT_LABELS = {"score": "Best match", "-uploaded_at": "Newest first", "uploaded_at": "Oldest first"}


class RepeatedTextInput(forms.TextInput):
    """Every value given under the name (`?q=a&q=b`), from a query string, a form or a plain dict."""

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> list[str]:
        getlist = getattr(data, "getlist", None)
        if getlist is not None:
            return list(getlist(name))
        value = data.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return name not in data


class RepeatedTextField(forms.Field):
    """A parameter that may repeat: blank values are dropped, each is held to `max_length`, at most
    `max_parts` of them."""

    widget = RepeatedTextInput

    def __init__(self, *, max_length: int, max_parts: int, **kwargs: Any) -> None:
        self.max_length, self.max_parts = max_length, max_parts
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        values = value if isinstance(value, list | tuple) else ([] if value in (None, "") else [value])
        return [text for text in (str(v).strip() for v in values) if text]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > self.max_parts:
            raise forms.ValidationError(f"At most {self.max_parts} of these, not {len(value)}.", code="too_many")
        for text in value:
            if len(text) > self.max_length:
                raise forms.ValidationError(
                    f"Each is at most {self.max_length} characters (one has {len(text)}).", code="max_length"
                )


class SearchParamsForm(MetadataFiltersForm):
    """Every search parameter, for the pages and the API alike: a bad value is an error naming
    the parameter; a limit above the maximum is capped, not refused. `q` and `not` may repeat."""

    q = RepeatedTextField(
        required=False, max_length=MAX_QUERY_LENGTH, max_parts=MAX_QUERY_PARTS, label="Describe the picture"
    )
    limit = forms.IntegerField(required=False, min_value=1, label="Results")
    min_score = forms.FloatField(required=False, min_value=-1.0, max_value=1.0, label="Minimum score")
    image_weight = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Picture's weight")
    not_weight = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Weight of 'not'")
    sort = forms.ChoiceField(required=False, choices=list(SORT_LABELS.items()), label="Order")
    page = forms.IntegerField(required=False, min_value=1, label="Page")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `not` is a Python keyword, so it cannot be declared as a class attribute.
        self.fields["not"] = RepeatedTextField(
            required=False, max_length=MAX_QUERY_LENGTH, max_parts=MAX_QUERY_PARTS, label="Not showing"
        )

    def clean_limit(self) -> int:
        return clamp_limit(self.cleaned_data.get("limit"))

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or SORTS[0]

    def clean_page(self) -> int:
        return self.cleaned_data.get("page") or 1

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        page, limit = data.get("page"), data.get("limit")
        if page and limit and (page - 1) * limit >= WINDOW:
            self.add_error(
                "page", f"Results stop at the best {WINDOW} matches; page {page} of {limit} starts past them."
            )
        return data

    @property
    def texts(self) -> list[str]:
        return list(self.cleaned_data.get("q") or [])

    @property
    def negatives(self) -> list[str]:
        return list(self.cleaned_data.get("not") or [])

    @property
    def options(self) -> dict[str, Any]:
        """The service's keyword arguments for ranking and paging, once valid."""
        data = self.cleaned_data
        return {
            "limit": data["limit"],
            "page": data["page"],
            "sort": data["sort"],
            "filters": self.filters,
            "min_score": data["min_score"],
            "not_weight": data["not_weight"],
        }

    @property
    def max_limit(self) -> int:
        return int(settings.SEARCH_MAX_LIMIT)


class SearchPageParamsForm(SearchParamsForm):
    """The search page's parameters: the API's, and the query picture kept in this session."""

    picture = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)


class ImageQueryForm(forms.Form):
    """The query picture, for the page and the API alike; it is validated as an upload is, never stored."""

    image = forms.FileField(
        label="Search with a picture",
        allow_empty_file=True,
        error_messages={"required": "Send the query picture as a file named 'image'."},
    )
