from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def default_quota() -> int:
    return int(settings.TENANT_DEFAULT_QUOTA_BYTES)


class Tenant(models.Model):
    """An organisation. Everything it owns carries a foreign key to it."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True, help_text="Inactive tenants are invisible to their members.")
    storage_quota_bytes = models.BigIntegerField(
        default=default_quota,
        validators=[MinValueValidator(0)],
        help_text="Total size of original files this tenant may store.",
    )
    # Tags every vector in Chroma; a UUID, so a recreated database never inherits old vectors.
    vector_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def vector_key(self) -> str:
        return str(self.vector_uuid)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="unique_membership")]
        indexes = [models.Index(fields=["tenant", "role"])]
        ordering = ["tenant__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def can_upload(self) -> bool:
        return self.role != Role.VIEWER

    @property
    def can_delete(self) -> bool:
        return self.role != Role.VIEWER

    @property
    def can_edit(self) -> bool:
        return self.role != Role.VIEWER

    @property
    def can_manage(self) -> bool:
        return self.role in {Role.OWNER, Role.ADMIN}


class TokenScope(models.TextChoices):
    """What an API key may do at most; its user's role may allow less. Ordered: each includes the
    one before it."""

    READ = "read", "Read: list, get, files, search"
    WRITE = "write", "Write: also upload, edit, delete"
    ADMIN = "admin", "Admin: also members, invitations, webhooks, keys"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A REST API key for one user in one tenant. Only a hash of the key is stored; the key itself
    is shown once, when it is made."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    # Keys made before scopes existed could do everything their user could: they became `write`.
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.WRITE)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "user"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditAction(models.TextChoices):
    """What a tenant's people did that matters later. The names are the log's vocabulary: the
    service refuses any other, and the field stores the value (no choices on the column, so a new
    action needs no migration)."""

    IMAGES_UPLOADED = "images.uploaded", "Images uploaded"
    IMAGE_DELETED = "image.deleted", "Image deleted"
    IMAGE_EDITED = "image.edited", "Image metadata edited"
    LABELS_CHANGED = "labels.changed", "Auto-tag vocabulary changed"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    INVITATION_SENT = "invitation.sent", "Invitation sent"
    INVITATION_RESENT = "invitation.resent", "Invitation re-sent"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    INVITATION_WITHDRAWN = "invitation.withdrawn", "Invitation withdrawn"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    WEBHOOK_CREATED = "webhook.created", "Webhook created"
    WEBHOOK_CHANGED = "webhook.changed", "Webhook changed"
    WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"


class AuditEvent(models.Model):
    """One entry of a tenant's audit log. Written by `tenants.audit.audit_record` only, never
    changed. The actor's name and the key's prefix are copied, so the entry still says who after
    the user or the key is gone."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_events")
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=40)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    api_token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    api_token_label = models.CharField(max_length=120, blank=True)
    address = models.CharField(max_length=64, blank=True, help_text="The client's address.")
    target = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "action", "-created_at"]),
            models.Index(fields=["tenant", "actor_user", "-created_at"]),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.tenant.slug} {self.actor_username or '-'} {self.action}"

    @property
    def action_label(self) -> str:
        try:
            return str(AuditAction(self.action).label)
        except ValueError:
            return self.action


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True)


class Invitation(models.Model):
    """An e-mail invited into a tenant with a role. The link's token is stored as a hash only and
    works once, within INVITATION_MAX_AGE_DAYS of the last (re-)sending; re-sending makes a new token,
    so the older link stops working. A withdrawn invitation is deleted (the audit log keeps it)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "tenant",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True),
                name="one_pending_invitation_per_email",
                violation_error_message="This e-mail already has a pending invitation to this tenant.",
            )
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"

    @property
    def expires_at(self) -> datetime:
        return self.sent_at + timedelta(days=settings.INVITATION_MAX_AGE_DAYS)

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at
