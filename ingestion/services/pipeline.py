"""The embedding pipeline: pending images claimed in batches, decoded, embedded and written to the
index, then marked ready (or failed, with a reason a person can read)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image

from ingestion.imaging import load_derivative, load_rgb, resize_for_model
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.events import images_emit
from ingestion.services.labels import labels_for, vocabulary_of
from ingestion.services.near_duplicates import near_duplicates_record
from vectors import index
from vectors.embedding import get_embedder
from vectors.index import Vector
from vectors.layout import image_metadata, image_metadata_change
from webhooks.models import EventType

logger = logging.getLogger(__name__)


@dataclass
class EmbedReport:
    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    claimed: int = 0


def enqueue_embedding(asset_ids: Sequence[uuid.UUID | str]) -> None:
    """Queues embedding in batches once the current transaction commits. If the broker is down
    the images stay pending, and the periodic sweep queues them again."""
    ids = [str(asset_id) for asset_id in asset_ids]
    if settings.EMBED_RUNNER == "thread":
        from ingestion import background  # it imports this module to run it

        if ids:
            transaction.on_commit(background.notify)
        return
    from ingestion.tasks import embed_assets  # the task module imports this one to run it

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


def vector_metadata(asset: ImageAsset, labels: Sequence[str] | None = None) -> dict[str, str | int | float | bool]:
    return image_metadata(
        category=asset.category,
        source=asset.source,
        uploaded_at=asset.created_at,
        tags=asset.tags,
        labels=asset.labels if labels is None else labels,
    )


def _claim(asset_ids: Sequence[str], *, token: str, top_up_to: int) -> list[ImageAsset]:
    """One claim per batch: the task's own pending images, the images this same task claimed before
    its worker died (it is delivered again with the same id), and then the oldest other pending
    images that were never attempted, up to `top_up_to`, so that single uploads still ride full
    batches. Their own tasks, when they run, find them taken and claim nothing."""
    mine = Q(id__in=list(asset_ids), status=AssetStatus.PENDING)
    if token:
        mine |= Q(status=AssetStatus.PROCESSING, claim_token=token)
    with transaction.atomic():
        assets = list(_lockable().filter(mine))
        if top_up_to > len(assets):
            others = _lockable().filter(status=AssetStatus.PENDING, attempts=0).exclude(id__in=[a.id for a in assets])
            assets += list(others[: top_up_to - len(assets)])
        _mark_processing(assets, token)
    return assets


def _lockable() -> Any:
    """Image rows to claim: rows another worker is claiming are skipped, and only the image rows are
    locked, never the tenant row an upload may be holding."""
    return (
        ImageAsset.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("tenant")
        .order_by("attempts", "created_at")
    )


def _mark_processing(assets: list[ImageAsset], token: str) -> None:
    ImageAsset.objects.filter(id__in=[a.id for a in assets]).update(
        status=AssetStatus.PROCESSING, attempts=F("attempts") + 1, claim_token=token, updated_at=timezone.now()
    )
    for asset in assets:
        asset.attempts += 1
        asset.status = AssetStatus.PROCESSING


def _claim_next_batch(limit: int) -> list[ImageAsset]:
    """The oldest pending images of any tenant, up to `limit`. An image that was attempted before
    (its process died with it) is claimed alone, so a poison image cannot take a batch down again."""
    with transaction.atomic():
        assets = list(_lockable().filter(status=AssetStatus.PENDING)[:limit])
        _mark_processing(assets, "")
    suspects = [a for a in assets if a.attempts > 1]
    if suspects and len(assets) > 1:
        _release([a.id for a in assets if a is not suspects[0]])
        return [suspects[0]]
    return assets


def assets_requeue_interrupted() -> int:
    """Puts every image left processing back in pending, its attempt still counted: for a process
    that is the only embedder (the single-process default) at its start, when any image still
    processing was being embedded by a run that ended."""
    return ImageAsset.objects.filter(status=AssetStatus.PROCESSING).update(
        status=AssetStatus.PENDING, claim_token="", updated_at=timezone.now()
    )


def _fail(asset: ImageAsset, reason: str) -> None:
    with transaction.atomic():
        failed = ImageAsset.objects.filter(id=asset.id).exclude(status=AssetStatus.FAILED)
        if failed.update(status=AssetStatus.FAILED, failure_reason=reason, updated_at=timezone.now()):
            asset.status, asset.failure_reason = AssetStatus.FAILED, reason
            images_emit(EventType.IMAGE_FAILED, [asset])


def _release(asset_ids: Sequence[uuid.UUID]) -> None:
    """Puts claimed images back in pending without counting the attempt against them."""
    ImageAsset.objects.filter(id__in=asset_ids, status=AssetStatus.PROCESSING).update(
        status=AssetStatus.PENDING, attempts=F("attempts") - 1, claim_token="", updated_at=timezone.now()
    )


def assets_embed(*, asset_ids: Sequence[str], claim_token: str = "", top_up: bool = True) -> EmbedReport:
    """Embeds the given images, topped up with other pending ones to a full forward batch, and
    upserts their vectors, one write per tenant; idempotent. `claim_token` is the task's id.

    Images already ready or failed are left alone. An image whose earlier attempt never finished
    (the worker died) is split off into a batch of its own, so one poison image cannot hold
    back the others; after EMBED_MAX_ATTEMPTS it is marked failed. Raises IndexUnavailable,
    with the claimed images back in pending, when Chroma cannot be reached.
    """
    embedder = get_embedder()  # weights that cannot be loaded leave every image pending, unclaimed
    report = EmbedReport()
    assets = _claim(asset_ids, token=claim_token, top_up_to=embedder.batch_size if top_up else 0)
    report.claimed = len(assets)
    if len(assets) > 1:
        suspects = [a for a in assets if a.attempts > 1]
        if suspects:
            _release([a.id for a in suspects])
            for suspect in sorted(suspects, key=lambda a: a.created_at, reverse=True):  # newest first, as before
                enqueue_embedding([suspect.id])
            report.deferred = [str(a.id) for a in suspects]
            assets = [a for a in assets if a.attempts == 1]
    _embed_claimed(assets, report)
    return report


def assets_embed_next_batch(*, limit: int | None = None) -> EmbedReport:
    """Claims the oldest pending images of any tenant (up to a forward batch) and embeds them: how
    the background embedder of the single-process default, and a command with no worker beside it,
    take their work. `report.claimed` is 0 when nothing was pending."""
    index.check_available()  # before the claim: an index out of reach, or weights that cannot be
    embedder = get_embedder()  # loaded, claim nothing
    report = EmbedReport()
    assets = _claim_next_batch(limit or embedder.batch_size)
    report.claimed = len(assets)
    _embed_claimed(assets, report)
    return report


def _embed_claimed(assets: Sequence[ImageAsset], report: EmbedReport) -> None:
    candidates = []
    for asset in assets:
        if asset.attempts > settings.EMBED_MAX_ATTEMPTS:
            _fail(asset, f"Gave up after {settings.EMBED_MAX_ATTEMPTS} attempts: processing this image kept crashing.")
            report.failed.append(str(asset.id))
        else:
            candidates.append(asset)
    if not candidates:
        return

    by_tenant: dict[int, list[tuple[ImageAsset, Vector]]] = defaultdict(list)
    work: list[ImageAsset] = []
    for asset, vector in _embed_stored_images(candidates, report):
        work.append(asset)
        by_tenant[asset.tenant_id].append((asset, vector))
    if not work:
        return
    written = _current_metadata(work)  # an edit made while the batch was being embedded counts
    embedder = get_embedder()
    labels: dict[uuid.UUID, list[str]] = {}
    try:
        for rows in by_tenant.values():
            tenant = rows[0][0].tenant
            vectors = np.stack([vector for _, vector in rows])
            found = labels_for(labels=vocabulary_of(tenant), vectors=vectors, embedder=embedder)
            labels.update((asset.id, labelled) for (asset, _), labelled in zip(rows, found, strict=True))
            index.upsert_vectors(
                tenant=tenant,
                ids=[str(asset.id) for asset, _ in rows],
                embeddings=vectors,
                metadatas=[vector_metadata(written.get(asset.id, asset), labels[asset.id]) for asset, _ in rows],
            )
    except index.IndexUnavailable:
        _release([asset.id for asset in work])
        raise
    with transaction.atomic():  # the images turn ready and their webhook events are recorded together
        processing = ImageAsset.objects.select_for_update().filter(
            id__in=[asset.id for asset in work], status=AssetStatus.PROCESSING
        )
        ready_ids = set(processing.values_list("id", flat=True))
        ImageAsset.objects.filter(id__in=ready_ids).update(
            status=AssetStatus.READY, failure_reason="", embedded_at=timezone.now(), updated_at=timezone.now()
        )
        ready = [written.get(asset.id, asset) for asset in work if asset.id in ready_ids]
        for asset in ready:
            asset.status = AssetStatus.READY
            asset.set_labels(labels[asset.id])
        if ready:
            ImageAsset.objects.bulk_update(ready, ["labels", "label_index"])
        images_emit(EventType.IMAGE_READY, ready)
    report.ready.extend(str(asset.id) for asset in work)
    try:  # one index query per image; the images are ready whatever it finds
        for rows in by_tenant.values():
            near_duplicates_record(tenant=rows[0][0].tenant, images=[row for row in rows if row[0].id in ready_ids])
    except index.IndexUnavailable:
        logger.warning("Could not look for near-duplicates of the images just embedded", exc_info=True)
    try:
        _catch_up_metadata(written)
    except index.IndexUnavailable:  # the images are ready; `reconcile_index` can repair their records
        logger.warning("Could not bring edited metadata to the index", exc_info=True)


def _current_metadata(assets: Sequence[ImageAsset]) -> dict[uuid.UUID, ImageAsset]:
    """The images' rows as they are now (their metadata may have been edited since the claim)."""
    return ImageAsset.objects.select_related("tenant").in_bulk([asset.id for asset in assets])


def _catch_up_metadata(written: dict[uuid.UUID, ImageAsset]) -> None:
    """An edit committed between reading the rows and writing their vectors found no record to
    change: the records get the rows' metadata now (`ingestion.services.editing` does the rest)."""
    for asset in ImageAsset.objects.select_related("tenant").filter(id__in=list(written)):
        before = written[asset.id]
        if (asset.category, asset.source, asset.tags) != (before.category, before.source, before.tags):
            removed = [t for t in before.tags if t not in asset.tags]
            index.update_metadata(
                tenant=asset.tenant,
                ids=[str(asset.id)],
                metadatas=[
                    image_metadata_change(
                        category=asset.category, source=asset.source, uploaded_at=asset.created_at,
                        tags=asset.tags, removed_tags=removed,
                    )
                ],
            )  # fmt: skip


def _embed_stored_images(assets: Sequence[ImageAsset], report: EmbedReport) -> Iterator[tuple[ImageAsset, Vector]]:
    """Reads each image's derivative (made at upload: decoded once) or, when there is none at the
    model's input size, decodes the original and makes one; in a thread pool that runs ahead of the
    forward passes (decoding releases the GIL), so the model is never left waiting. A file that
    cannot be decoded fails alone."""
    embedder = get_embedder()
    side = embedder.image_size
    min_side = settings.EMBED_DECODE_MIN_SIDE or side
    made: list[uuid.UUID] = []

    def prepare(asset: ImageAsset) -> Any:
        if asset.derivative_side == side:
            with (  # a derivative that is gone or damaged is made again from the original
                contextlib.suppress(OSError, ValueError, SyntaxError),
                default_storage.open(asset.derivative_name(side), "rb") as handle,
            ):
                return embedder.preprocess(load_derivative(handle, side=side))
        with default_storage.open(asset.file.name or "", "rb") as handle:
            resized = resize_for_model(load_rgb(handle, min_side=min_side), side=side)
        name = asset.derivative_name(side)
        default_storage.delete(name)  # a leftover of an interrupted attempt; the name must stay the same
        buffer = io.BytesIO()
        resized.save(buffer, format="PNG", compress_level=1)
        default_storage.save(name, ContentFile(buffer.getvalue()))
        made.append(asset.id)
        return embedder.preprocess(resized)

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
    if made:
        ImageAsset.objects.filter(id__in=made).update(derivative_side=side)
