"""A tenant's webhook endpoints and the deliveries of its events to them: an outbox. A delivery row
is written in the same transaction as the change it tells of, so nothing is told that did not
happen and nothing that happened goes untold, whatever the broker or the receiver does."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from webhooks.signing import seal, unseal


class EventType(models.TextChoices):
    IMAGE_READY = "image.ready", "An image became searchable"
    IMAGE_FAILED = "image.failed", "An image could not be processed"
    IMAGE_DELETED = "image.deleted", "An image was deleted"


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # Standard Webhooks' form: "whsec_" and the base64 of the key. Shown once, when made; kept
    # sealed (`webhooks.signing.seal`), since every delivery is signed with it. Read and set as `secret`.
    sealed_secret = models.TextField(editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # One sender at a time per endpoint, so its deliveries leave in order: the one holding the lease.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        """The signing secret, unsealed; SecretUnreadable when no configured key opens it."""
        return unseal(self.sealed_secret)

    @secret.setter
    def secret(self, value: str) -> None:
        self.sealed_secret = seal(value)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDelivery(models.Model):
    """One event for one endpoint. Its id orders the endpoint's deliveries; `message_id` is the
    `webhook-id` header, the same on every attempt, so a receiver can drop a repeat."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "endpoint", "-id"]),
            models.Index(fields=["endpoint", "status", "id"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"
