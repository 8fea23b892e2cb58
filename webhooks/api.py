"""`/api/v1/webhooks/`: a tenant's webhook endpoints and their delivery logs, for keys with the
`admin` scope of owners and admins. Validated by the page's form (`WebhookEndpointForm`)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api import Need, TenantScopedMixin
from tenants.audit import audit_record_for_request
from tenants.models import AuditAction
from webhooks.forms import WebhookEndpointForm
from webhooks.models import DeliveryStatus, EventType, WebhookDelivery, WebhookEndpoint
from webhooks.selectors import deliveries_for_endpoint
from webhooks.services import endpoint_create, endpoint_delete, endpoint_update


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "is_active", "created_at", "updated_at"]
        read_only_fields = fields


class NewWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…: verifies the signatures; shown only in this answer")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointWriteSerializer(serializers.Serializer[Any]):
    """The request as the schema shows it; the page's form validates it."""

    url = serializers.URLField(max_length=500, help_text="http(s); public addresses only")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices), min_length=1)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    is_active = serializers.BooleanField(required=False, default=True)


class WebhookEndpointPatchSerializer(WebhookEndpointWriteSerializer):
    url = serializers.URLField(required=False, max_length=500, help_text="http(s); public addresses only")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), min_length=1, required=False
    )
    is_active = serializers.BooleanField(required=False)


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "message_id", "event_type", "status", "attempts", "last_status_code", "last_error",
            "created_at", "last_attempt_at", "next_attempt_at", "delivered_at", "payload",
        ]  # fmt: skip
        read_only_fields = fields


class DeliveryLogPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class PaginatedDeliveriesSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WebhookDeliverySerializer(many=True)


def endpoint_form(data: Any, *, current: WebhookEndpoint | None = None) -> WebhookEndpointForm:
    """A request body as the form's data; for a PATCH, each field left out keeps its value."""
    if not isinstance(data, dict):
        raise DRFValidationError({"detail": "Send a JSON object."})
    values: dict[str, Any] = {}
    if current is not None:
        values = {
            "url": current.url,
            "events": current.events,
            "description": current.description,
            "is_active": current.is_active,
        }
    else:
        values["is_active"] = True
    values.update({k: v for k, v in data.items() if k in {"url", "events", "description", "is_active"}})
    errors: dict[str, list[str]] = {}
    if not isinstance(values.get("events", []), list):
        errors["events"] = ["Give a list of events."]
    if not isinstance(values.get("is_active"), bool):
        errors["is_active"] = ["Give true or false."]
    for name in ("url", "description"):
        if name in values and not isinstance(values[name], str):
            errors[name] = ["Give a text."]
    if errors:
        raise DRFValidationError(errors)
    if not values["is_active"]:
        values.pop("is_active")  # an unchecked box: the form reads a missing key as False
    return WebhookEndpointForm(values)


def _errors(form: WebhookEndpointForm) -> DRFValidationError:
    return DRFValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})


class WebhookViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[WebhookEndpoint],
):
    """The tenant's webhook endpoints. Another tenant's id is a 404, exactly as a missing one."""

    queryset = WebhookEndpoint.objects.order_by("-created_at")
    serializer_class = WebhookEndpointSerializer
    parser_classes = [JSONParser]
    lookup_value_converter = "uuid"

    def required_permission(self, request: Request) -> Need:
        return "manage"

    @extend_schema(request=WebhookEndpointWriteSerializer, responses={201: NewWebhookEndpointSerializer})
    def create(self, request: Request) -> Response:
        """Registers an endpoint for `image.ready`, `image.failed` and/or `image.deleted`. The answer
        carries its signing secret, shown only here."""
        form = endpoint_form(request.data)
        if not form.is_valid():
            raise _errors(form)
        data = form.cleaned_data
        try:
            endpoint = endpoint_create(
                tenant=self.tenant,
                created_by=request.user,  # type: ignore[arg-type]
                url=data["url"],
                events=data["events"],
                description=data["description"],
            )
        except ValidationError as exc:
            raise DRFValidationError(exc.message_dict) from exc
        if not data["is_active"]:
            endpoint_update(endpoint=endpoint, is_active=False)
        audit_record_for_request(
            request, tenant=self.tenant, action=AuditAction.WEBHOOK_CREATED, target=endpoint.url,
            detail={"webhook": str(endpoint.id), "events": endpoint.events},
        )  # fmt: skip
        return Response(NewWebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookEndpointPatchSerializer, responses={200: WebhookEndpointSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Changes the URL, events, description or `is_active` (a paused endpoint's deliveries wait)."""
        endpoint = self.get_object()
        form = endpoint_form(request.data, current=endpoint)
        if not form.is_valid():
            raise _errors(form)
        data = form.cleaned_data
        try:
            changed = endpoint_update(
                endpoint=endpoint,
                url=data["url"],
                events=data["events"],
                description=data["description"],
                is_active=data["is_active"],
            )
        except ValidationError as exc:
            raise DRFValidationError(exc.message_dict) from exc
        if changed:
            audit_record_for_request(
                request, tenant=self.tenant, action=AuditAction.WEBHOOK_CHANGED, target=endpoint.url,
                detail={"webhook": str(endpoint.id), "changed": changed},
            )  # fmt: skip
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Removes the endpoint and its deliveries, those still waiting included."""
        endpoint = self.get_object()
        audit_record_for_request(
            request, tenant=self.tenant, action=AuditAction.WEBHOOK_DELETED, target=endpoint.url,
            detail={"webhook": str(endpoint.id)},
        )  # fmt: skip
        endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="at most 200"),
        ],
        responses={200: PaginatedDeliveriesSerializer},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The endpoint's delivery log, newest first: each event's status (`pending` while it waits
        or is retried, `succeeded`, `failed` once given up after a day), attempts, the last answer's
        status code and the last error."""
        endpoint = self.get_object()
        paginator = DeliveryLogPagination()
        page = paginator.paginate_queryset(deliveries_for_endpoint(endpoint), request, view=self)
        return paginator.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
