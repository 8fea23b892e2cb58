from __future__ import annotations

import contextlib
import logging
import os
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from PIL import Image

from ingestion.imaging import load_rgb, make_thumbnail, without_metadata
from ingestion.models import AssetStatus, ImageAsset
from ingestion.validation import ValidatedImage, validate_image
from search import index
from search.embedding import get_embedder
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class QuotaExceeded(ValidationError):
    pass


@dataclass
class UploadOutcome:
    filename: str
    asset: ImageAsset | None = None
    error: str | None = None
    duplicate: bool = False


@dataclass
class EmbedReport:
    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def display_filename(name: str) -> str:
    """The client's file name made safe to show: no folders, no control characters, bounded length."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "unnamed"


def parse_tags(raw: str | Iterable[str]) -> list[str]:
    """ "Dog, beach ,dog" -> ["dog", "beach"]: trimmed, lower-cased, de-duplicated, in order."""
    items = re.split(r"[,\n]", raw) if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        tag = " ".join(item.split()).lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def tenant_storage_used(tenant: Tenant) -> int:
    return int(ImageAsset.objects.for_tenant(tenant).aggregate(total=Sum("byte_size"))["total"] or 0)


def _check_quota(tenant: Tenant, byte_size: int) -> None:
    used = tenant_storage_used(tenant)
    if used + byte_size > tenant.storage_quota_bytes:
        raise QuotaExceeded(
            f"Storage quota exceeded: {tenant.name} uses {filesizeformat(used)} of "
            f"{filesizeformat(tenant.storage_quota_bytes)} and this file needs {filesizeformat(byte_size)} more. "
            "Ask an operator to raise the quota or delete images.",
            code="quota",
        )


def _storage_prefix(tenant: Tenant) -> str:
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
    validated: ValidatedImage = validate_image(file, byte_size=byte_size)
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
    prefix = _storage_prefix(tenant)
    # Both before the lock: they take a while. The stored original carries no location or camera
    # data (its sha256 stays that of the upload, so the same file is recognised when sent again).
    thumbnail = ContentFile(make_thumbnail(validated.upright_rgb))
    original = ContentFile(without_metadata(validated.data, validated.image_format, orientation=validated.orientation))
    stored: list[str] = []
    try:
        with transaction.atomic():
            # Serialises uploads of one tenant, so concurrent uploads cannot overrun the quota together.
            Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
            _check_quota(tenant, validated.byte_size)
            asset.file.name = default_storage.save(f"{prefix}/originals/{asset.id}.{validated.extension}", original)
            stored.append(asset.file.name)
            asset.thumbnail.name = default_storage.save(f"{prefix}/thumbnails/{asset.id}.jpg", thumbnail)
            stored.append(asset.thumbnail.name)
            asset.full_clean()
            asset.save(force_insert=True)
    except IntegrityError:
        # The same bytes arrived concurrently; the other upload won.
        for name in stored:
            default_storage.delete(name)
        return ImageAsset.objects.for_tenant(tenant).get(sha256=validated.sha256), False
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    return asset, True


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
    New images are queued for embedding once their rows are committed."""
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
        outcomes.append(UploadOutcome(filename=name, asset=asset, duplicate=not created))
    new_ids = [o.asset.id for o in outcomes if o.asset is not None and not o.duplicate]
    enqueue_embedding(new_ids)
    # In the in-process mode the images are embedded by now; report their state as it is.
    current = ImageAsset.objects.select_related("tenant").in_bulk([o.asset.id for o in outcomes if o.asset is not None])
    for outcome in outcomes:
        if outcome.asset is not None:
            outcome.asset = current.get(outcome.asset.id, outcome.asset)
    return outcomes


def enqueue_embedding(asset_ids: Sequence[uuid.UUID | str]) -> None:
    """Queues embedding in batches once the current transaction commits. If the broker is down
    the images stay pending, and the periodic sweep queues them again."""
    from ingestion.tasks import embed_assets

    ids = [str(asset_id) for asset_id in asset_ids]
    batch = settings.EMBED_BATCH_SIZE

    def send() -> None:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            try:
                embed_assets.apply_async(
                    args=(chunk,), retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2}
                )
            except Exception:
                if settings.CELERY_TASK_ALWAYS_EAGER:
                    raise
                logger.warning("Could not queue %d images; the sweep will queue them later", len(chunk), exc_info=True)

    if ids:
        transaction.on_commit(send)


def _chroma_metadata(asset: ImageAsset) -> dict[str, str | int | bool]:
    metadata: dict[str, str | int | bool] = {
        "category": asset.category,
        "source": asset.source,
        "uploaded_at": int(asset.created_at.timestamp()),
    }
    for tag in asset.tags:
        metadata[f"tag:{tag}"] = True
    return metadata


def _claim(asset_ids: Sequence[str]) -> list[ImageAsset]:
    with transaction.atomic():
        assets = list(
            ImageAsset.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(id__in=asset_ids, status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING])
        )
        ImageAsset.objects.filter(id__in=[a.id for a in assets]).update(
            status=AssetStatus.PROCESSING, attempts=F("attempts") + 1, updated_at=timezone.now()
        )
    for asset in assets:
        asset.attempts += 1
        asset.status = AssetStatus.PROCESSING
    return assets


def _fail(asset: ImageAsset, reason: str) -> None:
    ImageAsset.objects.filter(id=asset.id).update(
        status=AssetStatus.FAILED, failure_reason=reason, updated_at=timezone.now()
    )


def assets_embed(*, asset_ids: Sequence[str]) -> EmbedReport:
    """Embeds the given images in batches and upserts their vectors; idempotent.

    Images already ready or failed are left alone. An image whose earlier attempt never finished
    (the worker died) is split off into a batch of its own, so one poison image cannot hold
    back the others; after EMBED_MAX_ATTEMPTS it is marked failed. Raises IndexUnavailable,
    with the claimed images back in pending, when Chroma cannot be reached.
    """
    report = EmbedReport()
    assets = _claim(asset_ids)
    if len(assets) > 1:
        suspects = [a for a in assets if a.attempts > 1]
        if suspects:
            _release([a.id for a in suspects])
            for suspect in suspects:
                enqueue_embedding([suspect.id])
            report.deferred = [str(a.id) for a in suspects]
            assets = [a for a in assets if a.attempts == 1]
    candidates = []
    for asset in assets:
        if asset.attempts > settings.EMBED_MAX_ATTEMPTS:
            _fail(asset, f"Gave up after {settings.EMBED_MAX_ATTEMPTS} attempts: processing this image kept crashing.")
            report.failed.append(str(asset.id))
        else:
            candidates.append(asset)
    if not candidates:
        return report

    by_tenant: dict[int, list[tuple[ImageAsset, list[float]]]] = defaultdict(list)
    work: list[ImageAsset] = []
    for asset, vector in _embed_stored_images(candidates, report):
        work.append(asset)
        by_tenant[asset.tenant_id].append((asset, vector))
    if not work:
        return report
    try:
        for rows in by_tenant.values():
            index.upsert_vectors(
                tenant=rows[0][0].tenant,
                ids=[str(asset.id) for asset, _ in rows],
                embeddings=[vector for _, vector in rows],
                metadatas=[_chroma_metadata(asset) for asset, _ in rows],
            )
    except index.IndexUnavailable:
        _release([asset.id for asset in work])
        raise
    ready_ids = [asset.id for asset in work]
    ImageAsset.objects.filter(id__in=ready_ids, status=AssetStatus.PROCESSING).update(
        status=AssetStatus.READY, failure_reason="", embedded_at=timezone.now(), updated_at=timezone.now()
    )
    report.ready.extend(str(i) for i in ready_ids)
    return report


def _embed_stored_images(assets: Sequence[ImageAsset], report: EmbedReport) -> Iterator[tuple[ImageAsset, list[float]]]:
    """Decodes and preprocesses in a thread pool that runs ahead of the forward passes (decoding
    releases the GIL), so the model is never left waiting for JPEGs. A file that cannot be decoded
    fails alone."""
    embedder = get_embedder()
    min_side = settings.EMBED_DECODE_MIN_SIDE or embedder.image_size

    def prepare(asset: ImageAsset) -> Any:
        with default_storage.open(asset.file.name or "", "rb") as handle:
            return embedder.preprocess(load_rgb(handle, min_side=min_side))

    threads = settings.EMBED_DECODE_THREADS or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        pending = [(asset, pool.submit(prepare, asset)) for asset in assets]
        for start in range(0, len(pending), embedder.batch_size):
            ready: list[tuple[ImageAsset, Any]] = []
            for asset, future in pending[start : start + embedder.batch_size]:
                try:
                    ready.append((asset, future.result()))
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError) as exc:
                    _fail(asset, f"The stored file could not be decoded: {exc}")
                    report.failed.append(str(asset.id))
            vectors = embedder.embed_preprocessed([tensor for _, tensor in ready])
            yield from zip((asset for asset, _ in ready), vectors, strict=True)


def _release(asset_ids: Sequence[uuid.UUID]) -> None:
    """Puts claimed images back in pending without counting the attempt against them."""
    ImageAsset.objects.filter(id__in=asset_ids, status=AssetStatus.PROCESSING).update(
        status=AssetStatus.PENDING, attempts=F("attempts") - 1, updated_at=timezone.now()
    )


def asset_delete(*, asset: ImageAsset) -> None:
    """Removes the vector, then the row, then (once committed) the files. If Chroma cannot be
    reached nothing is removed (IndexUnavailable), so a retry finds everything still in place."""
    index.delete_vectors(tenant=asset.tenant, ids=[str(asset.id)])
    names = [name for name in (asset.file.name, asset.thumbnail.name) if name]

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    with transaction.atomic():
        asset.delete()
        transaction.on_commit(delete_files)


def assets_requeue(*, assets: Iterable[ImageAsset]) -> int:
    """Gives failed (or stuck) images a fresh set of attempts and queues them; ready ones stay."""
    return assets_reembed(assets=[asset for asset in assets if asset.status != AssetStatus.READY])


def assets_reembed(*, assets: Iterable[ImageAsset]) -> int:
    """Queues images again whatever their state, e.g. ready ones whose vector went missing."""
    ids = [asset.id for asset in assets]
    ImageAsset.objects.filter(id__in=ids).update(
        status=AssetStatus.PENDING, attempts=0, failure_reason="", updated_at=timezone.now()
    )
    enqueue_embedding(ids)
    return len(ids)


def tenant_delete(*, tenant: Tenant) -> None:
    """Removes a tenant with everything it owns: its vectors (its collection), its files, its rows.
    If Chroma cannot be reached nothing is removed (IndexUnavailable)."""
    index.delete_tenant_vectors(tenant=tenant)
    prefix = _storage_prefix(tenant)
    with transaction.atomic():
        tenant.delete()
        transaction.on_commit(lambda: _delete_tree(prefix))


def _delete_tree(folder: str) -> None:
    if not default_storage.exists(folder):
        return
    folders, files = default_storage.listdir(folder)
    for name in files:
        default_storage.delete(f"{folder}/{name}")
    for sub in folders:
        _delete_tree(f"{folder}/{sub}")
    with contextlib.suppress(OSError):
        default_storage.delete(folder)


def assets_requeue_stale() -> int:
    """Queues again the images left pending or processing for too long (broker down, worker lost)."""
    cutoff = timezone.now() - timedelta(seconds=settings.EMBED_STALE_AFTER_SECONDS)
    ids = list(
        ImageAsset.objects.filter(
            status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING], updated_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    ImageAsset.objects.filter(id__in=ids).update(updated_at=timezone.now())
    enqueue_embedding(ids)
    return len(ids)
