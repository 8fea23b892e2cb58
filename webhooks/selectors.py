from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import Http404

from tenants.models import Tenant
from webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints_for_tenant(tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant=tenant).order_by("-created_at")


def endpoint_for_tenant(tenant: Tenant, endpoint_id: object) -> WebhookEndpoint:
    """The tenant's endpoint, or 404: the same answer for a missing id and another tenant's."""
    try:
        key = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise Http404("No such webhook.") from None
    endpoint = endpoints_for_tenant(tenant).filter(id=key).first()
    if endpoint is None:
        raise Http404("No such webhook.")
    return endpoint


def deliveries_for_endpoint(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first."""
    return WebhookDelivery.objects.filter(tenant=endpoint.tenant, endpoint=endpoint).order_by("-id")
