"""The REST side of people work, for keys of owners and admins (with the `admin` scope): members and
their roles, invitations. The same forms parse the input and the same services apply the rules as on
the pages (tenants.members, tenants.invitations), so the same request gets the same refusal: 400
naming the field, 403 for a role that may not, 404 for an id that is not the tenant's, 409 for
removing the last owner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api import Need, TenantScopedMixin
from tenants.audit import Actor
from tenants.forms import InvitationForm, RoleForm
from tenants.invitations import MailNotSent, invitation_create, invitation_resend, invitation_withdraw
from tenants.members import LastOwnerError, member_remove, member_role_change
from tenants.models import Invitation, Membership, Role
from tenants.schema import ERROR


class MemberSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "joined_at"]
        read_only_fields = fields


class MemberRoleSerializer(serializers.Serializer[Any]):
    """The request of a role change, as the schema shows it; `tenants.forms.RoleForm` validates it."""

    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    invited_by = serializers.CharField(source="invited_by.username", read_only=True, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "sent_at", "expires_at"]
        read_only_fields = fields


class InvitationRequestSerializer(serializers.Serializer[Any]):
    """The request of an invitation, as the schema shows it; `tenants.forms.InvitationForm` validates it."""

    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MailDown(APIException):
    status_code = 503
    default_detail = "The mail server did not take the invitation mail; nothing was kept. Retry shortly."
    default_code = "mail_unavailable"


class LastOwner(APIException):
    status_code = 409
    default_code = "last_owner"


def refusal(error: ValidationError) -> DRFValidationError:
    """A service's ValidationError as the API's 400: by field, or a `detail` when it names none."""
    if hasattr(error, "error_dict"):
        return DRFValidationError({field: [str(m) for m in messages] for field, messages in error.message_dict.items()})
    return DRFValidationError({"detail": " ".join(error.messages)})


def valid(form_class: type[forms.Form], data: Any) -> dict[str, Any]:
    """The request body checked by the page's form; a body that is not an object is a 400 too."""
    if not isinstance(data, Mapping):
        raise DRFValidationError({"detail": "The body must be an object (JSON or form fields)."})
    form = form_class(data)
    if not form.is_valid():
        raise DRFValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})
    return form.cleaned_data


class PeoplePagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 200


class MemberViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Membership],
):
    """The tenant's members and their roles. Owners and admins only; only owners make or unmake owners;
    the last owner stays."""

    queryset = Membership.objects.select_related("user", "tenant").order_by("created_at", "pk")
    serializer_class = MemberSerializer
    pagination_class = PeoplePagination
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def required_permission(self, request: Request) -> Need:
        return "manage"

    @extend_schema(request=MemberRoleSerializer, responses={200: MemberSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Changes the member's role (`role`: owner, admin, member or viewer)."""
        member = self.get_object()
        role = valid(RoleForm, request.data)["role"]
        try:
            member_role_change(actor=Actor.of_request(request, self.membership), member=member, role=role)
        except ValidationError as error:
            raise refusal(error) from None
        return Response(MemberSerializer(member).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(ERROR, description="The tenant's last owner stays.")})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Removes the member: their access ends at once and their API keys for the tenant are revoked."""
        member = self.get_object()
        try:
            member_remove(actor=Actor.of_request(request, self.membership), member=member)
        except LastOwnerError as error:
            raise LastOwner(" ".join(error.messages)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


MAIL_DOWN_RESPONSE = OpenApiResponse(ERROR, description="The mail server did not take the mail; nothing was kept.")


class InvitationViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Invitation],
):
    """The tenant's pending invitations. Owners and admins only; only owners invite owners."""

    queryset = Invitation.objects.pending().select_related("invited_by", "tenant").order_by("-created_at", "-pk")
    serializer_class = InvitationSerializer
    pagination_class = PeoplePagination
    http_method_names = ["get", "post", "delete", "head", "options"]

    def required_permission(self, request: Request) -> Need:
        return "manage"

    @extend_schema(request=InvitationRequestSerializer, responses={201: InvitationSerializer, 503: MAIL_DOWN_RESPONSE})
    def create(self, request: Request) -> Response:
        """Invites `email` with `role` (default member) and sends the mail with the link. Someone
        already a member, or already invited, is a 400 naming `email`."""
        data = valid(InvitationForm, request.data)
        try:
            invitation = invitation_create(
                actor=Actor.of_request(request, self.membership),
                email=data["email"],
                role=data["role"],
                base_url=request.build_absolute_uri("/"),
            )
        except ValidationError as error:
            raise refusal(error) from None
        except MailNotSent:
            raise MailDown() from None
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationSerializer, 503: MAIL_DOWN_RESPONSE})
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str | None = None) -> Response:
        """Sends the invitation again with a new link (the older one stops working) and a fresh expiry."""
        invitation = self.get_object()
        try:
            invitation_resend(
                actor=Actor.of_request(request, self.membership),
                invitation=invitation,
                base_url=request.build_absolute_uri("/"),
            )
        except MailNotSent:
            raise MailDown() from None
        return Response(InvitationSerializer(invitation).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Withdraws the invitation: its link stops working."""
        invitation_withdraw(actor=Actor.of_request(request, self.membership), invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
