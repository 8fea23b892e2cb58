"""The forms of people work: one per input, used by the pages and, through the same fields and
messages, by the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

from tenants.models import AuditAction, Membership, Role


def grantable_roles(membership: Membership) -> list[tuple[str, str]]:
    """The roles this member may hand out: owners all, admins all but owner."""
    return [(value, label) for value, label in Role.choices if value != Role.OWNER or membership.role == Role.OWNER]


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, required=False)

    def __init__(self, *args: Any, inviter: Membership | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if inviter is not None:
            self.fields["role"].choices = grantable_roles(inviter)  # type: ignore[attr-defined]

    def clean_role(self) -> str:
        return str(self.cleaned_data.get("role") or Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(forms.Form):
    person = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(required=False, choices=[("", "Every action"), *AuditAction.choices])

    def __init__(self, *args: Any, people: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["person"].choices = [("", "Everyone"), *people]  # type: ignore[attr-defined]


class InvitedSignupForm(UserCreationForm[User]):
    """A new person's username and password; the e-mail is the invited one, not theirs to choose."""

    def __init__(self, *args: Any, email: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.email = email  # the password may not resemble it either
        self.fields["username"].widget.attrs["autocomplete"] = "username"
