"""Uploads: a file from a user (page, API or `import_images`) into a stored, pending image."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat

from ingestion.imaging import make_derivative, make_thumbnail, without_metadata
from ingestion.models import MAX_TAGS, AssetStatus, ImageAsset, parse_tags
from ingestion.selectors import tenant_storage_used
from ingestion.services.pipeline import enqueue_embedding, vector_metadata
from ingestion.validation import ValidatedImage, validate_image
from tenants.models import Tenant
from vectors import index
from vectors.embedding import input_side


class QuotaExceeded(ValidationError):
    pass


@dataclass
class UploadOutcome:
    filename: str
    asset: ImageAsset | None = None
    error: str | None = None
    duplicate: bool = False
    # For a duplicate: what this upload added to the image already there ("tags", "category", "source").
    merged: list[str] = field(default_factory=list)

    @property
    def merged_note(self) -> str:
        return f"added its {' and '.join(self.merged)} to the image already there" if self.merged else ""


def upload_summary(outcomes: list[UploadOutcome]) -> tuple[str, dict[str, int]]:
    """What one upload did, for the audit log: the file's name (or how many files), and the counts of
    files sent, stored, already there and refused."""
    stored = sum(1 for o in outcomes if o.asset is not None and not o.duplicate)
    duplicates = sum(1 for o in outcomes if o.duplicate)
    target = outcomes[0].filename if len(outcomes) == 1 else f"{len(outcomes)} files"
    detail = {"count": len(outcomes), "stored": stored, "duplicates": duplicates}
    return target, detail | {"refused": len(outcomes) - stored - duplicates}


def display_filename(name: str) -> str:
    """The client's file name made safe to show: no folders, no control characters, bounded length."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "unnamed"


def _check_quota(tenant: Tenant, byte_size: int) -> None:
    used = tenant_storage_used(tenant)
    if used + byte_size > tenant.storage_quota_bytes:
        raise QuotaExceeded(
            f"Storage quota exceeded: {tenant.name} uses {filesizeformat(used)} of "
            f"{filesizeformat(tenant.storage_quota_bytes)} and this file needs {filesizeformat(byte_size)} more. "
            "Ask an operator to raise the quota or delete images.",
            code="quota",
        )


def storage_prefix(tenant: Tenant) -> str:
    """Where a tenant's files live in the storage: everything under it is the tenant's."""
    return f"tenants/{tenant.vector_uuid}"


def asset_create(
    *,
    tenant: Tenant,
    uploaded_by: User | None,
    file: IO[bytes],
    byte_size: int,
    filename: str,
    category: str = "",
    source: str = "",
    tags: Sequence[str] = (),
) -> tuple[ImageAsset, bool]:
    """Validates and stores one image. Returns (asset, created); created is False when the tenant
    already has these exact bytes. Raises ValidationError, having stored nothing."""
    side = input_side()
    # Decoded no finer than the model's input and the thumbnail need (the stored original keeps every pixel).
    validated: ValidatedImage = validate_image(
        file, byte_size=byte_size, keep_side=side, keep_edge=settings.THUMBNAIL_SIZE
    )
    existing = ImageAsset.objects.for_tenant(tenant).filter(sha256=validated.sha256).first()
    if existing is not None:
        return existing, False

    asset = ImageAsset(
        tenant=tenant,
        uploaded_by=uploaded_by,
        original_filename=display_filename(filename),
        sha256=validated.sha256,
        image_format=validated.image_format,
        byte_size=validated.byte_size,
        width=validated.width,
        height=validated.height,
        category=category.strip(),
        source=source.strip(),
    )
    asset.set_tags(parse_tags(tags))
    prefix = storage_prefix(tenant)
    # Both before the lock: they take a while. The stored original carries no location or camera
    # data (its sha256 stays that of the upload, so the same file is recognised when sent again).
    thumbnail = ContentFile(make_thumbnail(validated.upright_rgb))
    # Decoded once: the worker embeds this derivative instead of decoding the original again.
    derivative = ContentFile(make_derivative(validated.upright_rgb, side=side)) if side else None
    original = ContentFile(without_metadata(validated.data, validated.image_format, orientation=validated.orientation))
    stored: list[str] = []
    try:
        with transaction.atomic():
            # Serialises uploads of one tenant, so concurrent uploads cannot overrun the quota together.
            # FOR NO KEY UPDATE: rows that refer to the tenant (a worker marking images ready, their
            # webhook events) only take KEY SHARE on it, and never wait for an upload.
            Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).first()
            _check_quota(tenant, validated.byte_size)
            asset.file.name = default_storage.save(f"{prefix}/originals/{asset.id}.{validated.extension}", original)
            stored.append(asset.file.name)
            asset.thumbnail.name = default_storage.save(f"{prefix}/thumbnails/{asset.id}.jpg", thumbnail)
            stored.append(asset.thumbnail.name)
            if derivative is not None:
                stored.append(default_storage.save(asset.derivative_name(side), derivative))
                asset.derivative_side = side
            # The tenant and uploader are rows in hand and a second copy of these bytes is an
            # IntegrityError below: no query to check either.
            asset.full_clean(exclude=["tenant", "uploaded_by"], validate_unique=False, validate_constraints=False)
            asset.save(force_insert=True)
    except IntegrityError:
        for name in stored:
            default_storage.delete(name)
        # The same bytes arrived concurrently and the other upload won; anything else (the tenant or
        # the uploader deleted meanwhile) is not ours to hide.
        winner = ImageAsset.objects.for_tenant(tenant).filter(sha256=validated.sha256).first()
        if winner is None:
            raise
        return winner, False
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    return asset, True


def asset_merge_metadata(*, asset: ImageAsset, category: str, source: str, tags: Sequence[str]) -> list[str]:
    """The same picture sent again with more to say: its tags join the image's (up to the maximum) and
    its category and source fill the image's empty ones; nothing is overwritten. The index gets the
    new metadata at once when the image is searchable (no re-embedding). Returns what changed."""
    changed = []
    merged_tags = list(dict.fromkeys([*asset.tags, *parse_tags(tags)]))[:MAX_TAGS]
    if merged_tags != asset.tags:
        asset.set_tags(merged_tags)
        changed.append("tags")
    for name, value in (("category", category.strip()), ("source", source.strip())):
        if value and not getattr(asset, name):
            setattr(asset, name, value)
            changed.append(name)
    if not changed:
        return []
    asset.full_clean()
    with transaction.atomic():
        asset.save(update_fields=["tags", "tag_index", "category", "source", "updated_at"])
        if asset.status == AssetStatus.READY:
            index.update_metadata(tenant=asset.tenant, ids=[str(asset.id)], metadatas=[vector_metadata(asset)])
    return changed


def assets_upload(
    *,
    tenant: Tenant,
    uploaded_by: User | None,
    files: Sequence[File],  # type: ignore[type-arg]
    category: str = "",
    source: str = "",
    tags: Sequence[str] = (),
) -> list[UploadOutcome]:
    """Stores each file on its own: a refused file stores nothing and does not stop the others.
    New images are queued for embedding once their rows are committed. The one upload service of
    every door (the page, the API, `import_images`), each of which validates its metadata with
    `ingestion.forms.UploadForm` first."""
    outcomes: list[UploadOutcome] = []
    for upload in files:
        name = display_filename(upload.name or "")
        try:
            asset, created = asset_create(
                tenant=tenant,
                uploaded_by=uploaded_by,
                file=upload,
                byte_size=upload.size or 0,
                filename=name,
                category=category,
                source=source,
                tags=tags,
            )
        except ValidationError as exc:
            outcomes.append(UploadOutcome(filename=name, error=" ".join(exc.messages)))
            continue
        merged = [] if created else asset_merge_metadata(asset=asset, category=category, source=source, tags=tags)
        outcomes.append(UploadOutcome(filename=name, asset=asset, duplicate=not created, merged=merged))
    new_ids = [o.asset.id for o in outcomes if o.asset is not None and not o.duplicate]
    enqueue_embedding(new_ids, fresh=True)
    if settings.EMBED_RUNNER != "inline" or not new_ids:
        return outcomes
    # In the in-process mode the images are embedded by now; report their state as it is.
    current = ImageAsset.objects.select_related("tenant").in_bulk([o.asset.id for o in outcomes if o.asset is not None])
    for outcome in outcomes:
        if outcome.asset is not None:
            outcome.asset = current.get(outcome.asset.id, outcome.asset)
    return outcomes
