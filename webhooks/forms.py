from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from webhooks.addresses import AddressRefused, check_url
from webhooks.models import EventType


class WebhookEndpointForm(forms.Form):
    """One way in for an endpoint: the page and the API validate with this form."""

    url = forms.URLField(max_length=500, assume_scheme="https", label="URL")
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple, error_messages={"required": "Choose an event."}
    )
    description = forms.CharField(max_length=200, required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        try:
            check_url(url)
        except AddressRefused as exc:
            raise ValidationError(str(exc)) from exc
        return url

    def clean(self) -> dict[str, Any]:
        return super().clean() or {}
