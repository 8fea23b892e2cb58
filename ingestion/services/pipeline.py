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
from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from PIL import Image

from ingestion import broker
from ingestion.imaging import load_derivative, load_rgb, resize_for_model
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.events import images_emit
from ingestion.services.labels import labels_for, vocabulary_of
from ingestion.services.near_duplicates import near_duplicates_record
from ingestion.spaces import live_spaces
from vectors import index
from vectors.embedding import ClipEmbedder, ModelSpec, get_embedder, model_key, release_models
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


# Set in the broker's Redis while an embedding task for new uploads waits in the queue: a task tops
# its batch up with every pending image never attempted (unless its own images were attempted
# before), so an upload that finds it set sends none of its own. The task clears it first thing (an
# upload committed before its claim is in that claim; one after sends the next task), and a task
# whose claim came back full sends one more. When a task is lost before its claim (its worker
# killed, a publish that failed), the images coalesced onto it are taken by the next task any
# upload sends once the flag is gone (it expires after 30 s), or by the periodic sweep
# (EMBED_STALE_AFTER_SECONDS), as every image of a failed publish always was.
TASK_WAITING_KEY = "imagesearch:embed-task-waiting"
TASK_WAITING_SECONDS = 30


def enqueue_embedding(asset_ids: Sequence[uuid.UUID | str], *, fresh: bool = False) -> None:
    """Queues embedding in batches once the current transaction commits. If the broker is down
    the images stay pending, and the periodic sweep queues them again. `fresh` images (never
    attempted: new uploads) send no task while one is already waiting, which will take them."""
    ids = [str(asset_id) for asset_id in asset_ids]
    if settings.EMBED_RUNNER == "thread":
        from ingestion import background  # it imports this module to run it

        if ids:
            transaction.on_commit(background.notify)
        return
    if ids:
        transaction.on_commit(lambda: _send_tasks(ids, coalesce=fresh))


def _send_tasks(ids: Sequence[str], *, coalesce: bool) -> None:
    from ingestion.tasks import embed_assets  # the task module imports this one to run it

    coalesce = coalesce and _through_broker()
    if coalesce and broker.flag_set(TASK_WAITING_KEY, seconds=TASK_WAITING_SECONDS) is False:
        return  # a task for new uploads is waiting: it will take these
    batch = settings.EMBED_BATCH_SIZE
    for start in range(0, max(len(ids), 1), batch):
        chunk = list(ids[start : start + batch])
        try:
            embed_assets.apply_async(args=(chunk,), retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2})
        except Exception:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                raise
            logger.warning("Could not queue %d images; the sweep will queue them later", len(chunk), exc_info=True)
            if coalesce:  # the next upload must send a task (and it takes these images too)
                broker.flag_clear(TASK_WAITING_KEY)


def _through_broker() -> bool:
    """Tasks go to workers through the broker (not run in this process): coalescing applies."""
    return settings.EMBED_RUNNER == "celery"


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
    batches. Their own tasks, when they run, find them taken and claim nothing. A task whose own
    images were attempted before (a suspect's own task, a batch handed out again) is not topped up:
    its suspects are tried apart, and new uploads pending meanwhile must not split them off again."""
    mine = Q(id__in=list(asset_ids), status=AssetStatus.PENDING)
    if token:
        mine |= Q(status=AssetStatus.PROCESSING, claim_token=token)
    with transaction.atomic():
        assets = list(_lockable().filter(mine))
        if top_up_to > len(assets) and all(asset.attempts == 0 for asset in assets):
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
    """Embeds the given images, topped up with other pending ones to a full forward batch (unless
    they were attempted before: see `_claim`), and upserts their vectors, one write per tenant;
    idempotent. `claim_token` is the task's id.

    Images already ready or failed are left alone. An image whose earlier attempt never finished
    (the worker died) is split off into a batch of its own, so one poison image cannot hold
    back the others; after EMBED_MAX_ATTEMPTS it is marked failed. Raises IndexUnavailable,
    with the claimed images back in pending, when Chroma cannot be reached.
    """
    if _through_broker():
        broker.flag_clear(TASK_WAITING_KEY)  # first: whatever happens here, the next upload sends a task
    index.check_available()  # before the claim: an index out of reach, or weights that cannot be
    embedder = get_embedder()  # loaded, leave every image pending, unclaimed, and send no more tasks
    report = EmbedReport()
    assets = _claim(asset_ids, token=claim_token, top_up_to=embedder.batch_size if top_up else 0)
    report.claimed = len(assets)
    if top_up and len(assets) >= embedder.batch_size and _through_broker():
        _send_tasks([], coalesce=True)  # more may be pending: the next task waits while this one embeds
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

    plan = live_spaces()  # the active model, and the one a reindex is building: each gets the vectors
    release_models(keep=plan.specs)
    embedders = [get_embedder(spec=spec) for spec in plan.specs]
    by_tenant: dict[int, list[tuple[ImageAsset, list[Vector]]]] = defaultdict(list)
    work: list[ImageAsset] = []
    for asset, vectors in _embed_stored_images(candidates, report, embedders):
        work.append(asset)
        by_tenant[asset.tenant_id].append((asset, vectors))
    if not work:
        return
    written = _current_metadata(work)  # an edit made while the batch was being embedded counts
    try:
        labels_by_space = _write_vectors(by_tenant, embedders, written)
        # A reindex that began (or switched) while this batch was embedded: its space gets them too.
        now_live = live_spaces(fresh=True)
        late = [spec for spec in now_live.specs if model_key(spec) not in labels_by_space]
        if late:
            late_embedders = [get_embedder(spec=spec) for spec in late]
            late_rows: dict[int, list[tuple[ImageAsset, list[Vector]]]] = defaultdict(list)
            for asset, vectors in _embed_stored_images(work, EmbedReport(), late_embedders, primary=False):
                late_rows[asset.tenant_id].append((asset, vectors))
            labels_by_space.update(_write_vectors(late_rows, late_embedders, written))
        # The rows keep the labels of the model active now (a switch may have happened meanwhile).
        labels = labels_by_space.get(model_key(now_live.active)) or labels_by_space[embedders[0].model_key]
    except index.IndexUnavailable:
        _release([asset.id for asset in work])
        raise
    with transaction.atomic():  # the images turn ready and their webhook events are recorded together
        processing = ImageAsset.objects.select_for_update().filter(
            id__in=[asset.id for asset in work], status=AssetStatus.PROCESSING
        )
        ready_ids = set(processing.values_list("id", flat=True))
        ready = [written.get(asset.id, asset) for asset in work if asset.id in ready_ids]
        now = timezone.now()
        for asset in ready:
            asset.status, asset.failure_reason, asset.embedded_at, asset.updated_at = AssetStatus.READY, "", now, now
            asset.set_labels(labels.get(asset.id, []))
        # One statement, each row updated once: a second update of the same rows in this transaction
        # would make PostgreSQL check their tenant key again, and wait for an upload holding the
        # tenant row. Only the labels differ from row to row (Django's bulk_update would build a
        # CASE for every field: half the bookkeeping time of a batch of 32).
        if ready:
            ImageAsset.objects.filter(id__in=[asset.id for asset in ready]).update(
                status=AssetStatus.READY,
                failure_reason="",
                embedded_at=now,
                updated_at=now,
                labels=_per_row(ready, "labels", models.JSONField()),
                label_index=_per_row(ready, "label_index", models.TextField()),
            )
        images_emit(EventType.IMAGE_READY, ready)
    report.ready.extend(str(asset.id) for asset in work)
    try:  # one index query per image; the images are ready whatever it finds
        for rows in by_tenant.values():
            near_duplicates_record(
                tenant=rows[0][0].tenant,
                images=[(asset, vectors[0]) for asset, vectors in rows if asset.id in ready_ids],
                space=embedders[0].model_key,
            )
    except index.IndexUnavailable:
        logger.warning("Could not look for near-duplicates of the images just embedded", exc_info=True)
    try:
        _catch_up_metadata(written)
    except index.IndexUnavailable:  # the images are ready; `reconcile_index` can repair their records
        logger.warning("Could not bring edited metadata to the index", exc_info=True)


def _per_row(assets: Sequence[ImageAsset], field: str, output: models.Field) -> Any:  # type: ignore[type-arg]
    """Each row's own value of `field`, as one expression: the value itself when all rows share it."""
    values = [getattr(asset, field) for asset in assets]
    if all(value == values[0] for value in values):
        return Value(values[0], output_field=output)
    return Case(*[When(id=a.id, then=Value(v, output_field=output)) for a, v in zip(assets, values, strict=True)])


def assets_embed_into(*, assets: Sequence[ImageAsset], spec: ModelSpec) -> int:
    """Embeds ready images into the space of another model (`spec`), leaving their state alone:
    how `manage.py reindex` builds a new model's vectors. Returns how many were written; an image
    whose file cannot be decoded now is skipped (the build's check finds it missing)."""
    if not assets:
        return 0
    embedder = get_embedder(spec=spec)
    rows: dict[int, list[tuple[ImageAsset, list[Vector]]]] = defaultdict(list)
    for asset, vectors in _embed_stored_images(assets, EmbedReport(), [embedder], primary=False):
        rows[asset.tenant_id].append((asset, vectors))
    written = _current_metadata(assets)
    _write_vectors(rows, [embedder], written)
    _catch_up_metadata(written)
    return sum(len(tenant_rows) for tenant_rows in rows.values())


def _write_vectors(
    by_tenant: dict[int, list[tuple[ImageAsset, list[Vector]]]],
    embedders: Sequence[ClipEmbedder],
    written: dict[uuid.UUID, ImageAsset],
) -> dict[str, dict[uuid.UUID, list[str]]]:
    """One upsert per tenant and space, each record with the labels its own model gives; returns
    those labels by space."""
    labels_by_space: dict[str, dict[uuid.UUID, list[str]]] = {embedder.model_key: {} for embedder in embedders}
    for rows in by_tenant.values():
        tenant = rows[0][0].tenant
        vocabulary = vocabulary_of(tenant)
        for position, embedder in enumerate(embedders):
            vectors = np.stack([per_model[position] for _, per_model in rows])
            labels = labels_for(labels=vocabulary, vectors=vectors, embedder=embedder)
            labels_by_space[embedder.model_key].update(
                (asset.id, found) for (asset, _), found in zip(rows, labels, strict=True)
            )
            index.upsert_vectors(
                tenant=tenant,
                space=embedder.model_key,
                ids=[str(asset.id) for asset, _ in rows],
                embeddings=vectors,
                metadatas=[
                    vector_metadata(written.get(asset.id, asset), found)
                    for (asset, _), found in zip(rows, labels, strict=True)
                ],
            )
    return labels_by_space


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


def _embed_stored_images(
    assets: Sequence[ImageAsset], report: EmbedReport, embedders: Sequence[ClipEmbedder], *, primary: bool = True
) -> Iterator[tuple[ImageAsset, list[Vector]]]:
    """Reads each image's derivative (made at upload: decoded once) or, when there is none at the
    model's input size, decodes the original and makes one; in a thread pool that runs ahead of the
    forward passes (decoding releases the GIL), so the model is never left waiting. Each image
    comes with one vector per embedder (two while a reindex builds a second model's space; the
    original is decoded at most once for both). A file that cannot be decoded fails alone. A pass
    that is not `primary` (a space that went live meanwhile) records neither failures nor the
    derivative's side on the row: both belong to the active model's pass."""
    primary_side = embedders[0].image_size
    sides = sorted({embedder.image_size for embedder in embedders})
    min_side = settings.EMBED_DECODE_MIN_SIDE or sides[-1]
    made: list[uuid.UUID] = []

    def prepare(asset: ImageAsset) -> list[Any]:
        original: Image.Image | None = None
        pictures: dict[int, Image.Image] = {}
        for side in sides:
            # The active model's derivative is known to exist from the row; another model's is looked for.
            if asset.derivative_side == side or side != primary_side or not primary:
                with (  # a derivative that is gone or damaged is made again from the original
                    contextlib.suppress(OSError, ValueError, SyntaxError),
                    default_storage.open(asset.derivative_name(side), "rb") as handle,
                ):
                    pictures[side] = load_derivative(handle, side=side)
                    continue
            if original is None:
                with default_storage.open(asset.file.name or "", "rb") as handle:
                    original = load_rgb(handle, min_side=min_side)
            pictures[side] = _store_derivative(asset, resize_for_model(original, side=side), side)
            if side == primary_side:
                made.append(asset.id)
        return [embedder.preprocess(pictures[embedder.image_size]) for embedder in embedders]

    batch_size = embedders[0].batch_size
    threads = settings.EMBED_DECODE_THREADS or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        pending = [(asset, pool.submit(prepare, asset)) for asset in assets]
        for start in range(0, len(pending), batch_size):
            ready: list[tuple[ImageAsset, list[Any]]] = []
            for asset, future in pending[start : start + batch_size]:
                try:
                    ready.append((asset, future.result()))
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError) as exc:
                    if primary:
                        _fail(asset, f"The stored file could not be decoded: {exc}")
                        report.failed.append(str(asset.id))
            vectors = [
                embedder.embed_preprocessed([tensors[position] for _, tensors in ready])
                for position, embedder in enumerate(embedders)
            ]
            for row, (asset, _) in enumerate(ready):
                yield asset, [per_model[row] for per_model in vectors]
    if made and primary:
        ImageAsset.objects.filter(id__in=made).update(derivative_side=primary_side)


def _store_derivative(asset: ImageAsset, resized: Image.Image, side: int) -> Image.Image:
    name = asset.derivative_name(side)
    default_storage.delete(name)  # a leftover of an interrupted attempt; the name must stay the same
    buffer = io.BytesIO()
    resized.save(buffer, format="PNG", compress_level=1)
    default_storage.save(name, ContentFile(buffer.getvalue()))
    return resized
