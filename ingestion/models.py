from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath as Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tenants.models import Tenant

MAX_TAGS = 20
MAX_TAG_LENGTH = 50


def parse_tags(raw: str | Iterable[str]) -> list[str]:
    """ "Dog, beach ,dog" -> ["dog", "beach"]: trimmed, lower-cased, de-duplicated, in order."""
    items = re.split(r"[,\n]", raw) if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        tag = " ".join(item.split()).lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _validate_words(value: Any, *, noun: str, most: str, limit: int) -> None:
    """A list of words: tags (people's) and labels (the auto-tag vocabulary) keep the same rules."""
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise ValidationError(f"{noun.capitalize()}s must be a list of words.")
    if len(value) > limit:
        raise ValidationError(most)
    for word in value:
        if not word or len(word) > MAX_TAG_LENGTH:
            raise ValidationError(f"Each {noun} must have 1 to {MAX_TAG_LENGTH} characters.")


def validate_tags(value: Any) -> None:
    _validate_words(value, noun="tag", most=f"At most {MAX_TAGS} tags per image.", limit=MAX_TAGS)


class AssetStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ImageAssetQuerySet(models.QuerySet["ImageAsset"]):
    def for_tenant(self, tenant: Tenant) -> ImageAssetQuerySet:
        return self.filter(tenant=tenant)


class ImageAsset(models.Model):
    """One uploaded picture: the stored original, its thumbnail, metadata and embedding state.

    The id is also the vector id in Chroma.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="images")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    original_filename = models.CharField(
        max_length=255, help_text="As the client named it; shown, never used as a path."
    )
    file = models.FileField(max_length=300)
    thumbnail = models.FileField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    image_format = models.CharField(max_length=8)
    byte_size = models.BigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    category = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    # ",beach,summer,": lets every database filter by tag (SQLite has no JSON containment).
    tag_index = models.CharField(max_length=1100, blank=True, editable=False)
    # Auto-tags: the labels of the tenant's vocabulary this picture matches (`ingestion.services.
    # labels`), computed from its vector, best match first; `label_index` as `tag_index`.
    labels = models.JSONField(default=list, blank=True, editable=False)
    label_index = models.CharField(max_length=2700, blank=True, editable=False)
    # The side of the stored derivative (ingestion.imaging.make_derivative) the model embeds instead
    # of decoding the original again; 0 when there is none. Its name follows from the id and side.
    derivative_side = models.PositiveSmallIntegerField(default=0, editable=False)
    status = models.CharField(max_length=16, choices=AssetStatus.choices, default=AssetStatus.PENDING)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The embedding task that claimed the image while it is processing: that task, delivered again
    # after its worker died, claims it back; another task leaves it alone unless it went stale.
    claim_token = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    embedded_at = models.DateTimeField(null=True, blank=True)

    objects = ImageAssetQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "sha256"], name="unique_image_per_tenant")]
        indexes = [
            models.Index(fields=["tenant", "status"]),
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["status", "updated_at"]),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_filename or str(self.id)

    def set_tags(self, tags: list[str]) -> None:
        self.tags = tags
        self.tag_index = f",{','.join(tags)}," if tags else ""

    def set_labels(self, labels: list[str]) -> None:
        self.labels = labels
        self.label_index = f",{','.join(labels)}," if labels else ""

    def derivative_name(self, side: int) -> str:
        return f"{Path(self.file.name or '').parent.parent}/derivatives/{side}/{self.id}.png"

    @property
    def is_final(self) -> bool:
        return self.status in {AssetStatus.READY, AssetStatus.FAILED}


class BulkActionKind(models.TextChoices):
    DELETE = "delete", "Delete"
    ADD_TAGS = "add_tags", "Add tags"
    REMOVE_TAGS = "remove_tags", "Remove tags"
    SET_CATEGORY = "set_category", "Set category"
    SET_SOURCE = "set_source", "Set source"
    REQUEUE = "requeue", "Re-queue failed"
    RELABEL = "relabel", "Auto-tag again"


class BulkActionStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Stopped"


class BulkAction(models.Model):
    """One action on many images of a tenant, run in steps that each commit (`ingestion.services.
    bulk`): the images chosen (`asset_ids`), or every image matching a filter (`filters`) that was
    uploaded by the time the action was asked for (`cutoff`), taken in upload order from `cursor`
    on, so a step run twice (a worker died, the task came again) changes nothing more. `key` is the
    form's: the same request sent twice makes one action."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="bulk_actions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    key = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=BulkActionKind.choices)
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    value = models.CharField(max_length=100, blank=True, help_text="the category or source to set")
    asset_ids = models.JSONField(default=list, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    cutoff = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=BulkActionStatus.choices, default=BulkActionStatus.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="the first reasons images were refused")
    cursor = models.JSONField(null=True, blank=True, help_text="the last image done: [uploaded at, id]")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="unique_bulk_action_key")]
        indexes = [models.Index(fields=["tenant", "-created_at"]), models.Index(fields=["status", "updated_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.total} images ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in {BulkActionStatus.DONE, BulkActionStatus.FAILED}

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))

    @property
    def description(self) -> str:
        what = {
            BulkActionKind.ADD_TAGS: f"Add {', '.join('#' + t for t in self.tags)}",
            BulkActionKind.REMOVE_TAGS: f"Remove {', '.join('#' + t for t in self.tags)}",
            BulkActionKind.SET_CATEGORY: f"Set category to “{self.value}”" if self.value else "Clear the category",
            BulkActionKind.SET_SOURCE: f"Set source to “{self.value}”" if self.value else "Clear the source",
        }.get(BulkActionKind(self.kind), self.get_kind_display())
        return f"{what} on {self.total} image{'s' if self.total != 1 else ''}"


MAX_LABELS = 50


def validate_labels(value: Any) -> None:
    _validate_words(value, noun="label", most=f"At most {MAX_LABELS} labels.", limit=MAX_LABELS)
    if any("," in label for label in value):
        raise ValidationError("A label may not contain a comma.")


class LabelVocabulary(models.Model):
    """The labels a tenant's owners and admins want its pictures auto-tagged with (e.g. receipt,
    screenshot, whiteboard): each ready image gets those whose similarity to "a photo of a {label}"
    passes AUTO_TAG_MIN_SCORE (`ingestion.services.labels`)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="label_vocabulary")
    labels = models.JSONField(default=list, blank=True, validators=[validate_labels])
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "label vocabularies"

    def __str__(self) -> str:
        return ", ".join(self.labels) or "(no labels)"


class NearDuplicate(models.Model):
    """Two of a tenant's images whose vectors lie within NEAR_DUPLICATE_DISTANCE (cosine distance):
    recorded in both directions when the later one becomes ready; gone with either image. Exact
    duplicates (the same bytes) never get this far: the upload recognises them."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(ImageAsset, on_delete=models.CASCADE, related_name="near_duplicates")
    duplicate = models.ForeignKey(ImageAsset, on_delete=models.CASCADE, related_name="+")
    distance = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "duplicate"], name="unique_near_duplicate_pair")]
        indexes = [models.Index(fields=["tenant", "image"])]

    def __str__(self) -> str:
        return f"{self.image_id} ~ {self.duplicate_id} ({self.distance:.4f})"


class VectorSpaceState(models.TextChoices):
    BUILDING = "building", "Building"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired (old vectors kept)"
    DROPPED = "dropped", "Dropped"


class VectorSpace(models.Model):
    """A model and its weights, and the vectors they make: one collection per tenant in the index
    (`vectors.index`, named by `key`). One space is active (searches and uploads use it); while
    `manage.py reindex` builds another, uploads are embedded into both; when every tenant's build
    is complete the new one becomes active in one step (`ingestion.services.reindex`). Before the
    first reindex there is no row: the settings' model (CLIP_MODEL, CLIP_PRETRAINED) is active."""

    key = models.CharField(max_length=200, unique=True, help_text="vectors.embedding.model_key")
    model = models.CharField(max_length=100, help_text="the OpenCLIP model name, e.g. ViT-B-32")
    pretrained = models.CharField(max_length=500, help_text="a pretrained tag or a checkpoint path")
    state = models.CharField(max_length=16, choices=VectorSpaceState.choices, default=VectorSpaceState.BUILDING)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="why the build last stopped, if it did")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=models.Q(state="active"), name="one_active_space"),
            models.UniqueConstraint(fields=["state"], condition=models.Q(state="building"), name="one_building_space"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model} ({self.pretrained})"


class ReindexProgress(models.Model):
    """How far a space's build has come for one tenant: its ready images taken in upload order from
    `cursor` on; `finished_at` once every ready image has a vector in the space."""

    space = models.ForeignKey(VectorSpace, on_delete=models.CASCADE, related_name="progress")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    total = models.PositiveIntegerField(default=0, help_text="ready images when the build reached the tenant")
    done = models.PositiveIntegerField(default=0)
    cursor = models.JSONField(null=True, blank=True, help_text="the last image done: [uploaded at, id]")
    finished_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(
        null=True, blank=True, help_text="a process is making this tenant's next step until then"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "tenant"], name="unique_reindex_progress")]
        verbose_name_plural = "reindex progress"

    def __str__(self) -> str:
        return f"{self.tenant} in {self.space}: {self.done}/{self.total}"

    @property
    def percent(self) -> int:
        if self.finished_at:
            return 100
        return 0 if not self.total else min(99, round(100 * self.done / self.total))
