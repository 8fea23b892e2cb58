"""Actions on many images at once (the library page): delete, add or remove tags, set the category
or source, re-queue failed images; and auto-tagging a tenant again when its vocabulary changes.

An action is a row (`BulkAction`) before it is work: it names its images (the ones chosen, or a
filter and the moment it was asked for, so images uploaded afterwards are left out) and runs in
steps of STEP images in upload order, each step committing the images' changes and the action's
progress together. A step run twice finds its images already changed (or gone) and changes nothing
more, so an action interrupted anywhere (a worker killed, the task delivered again) finishes
correctly when it runs again, and the same form sent twice is one action (`key`).

Where it runs: small actions (up to INLINE_MAX images) at once in the request; larger ones in the
background: a Celery task (`ingestion.tasks.run_bulk_action`) in the full stack, a thread of the web
process in the single-process default, in the request when tasks run inline (tests). An action left
running by a process that died is taken up again by `bulk_actions_resume` (Celery beat in the full
stack, the background embedder's start in the single-process default)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus, BulkAction, BulkActionKind, BulkActionStatus, ImageAsset
from ingestion.services.deletion import assets_delete
from ingestion.services.editing import assets_change_metadata
from ingestion.services.labels import assets_relabel
from ingestion.services.requeue import assets_requeue
from tenants.models import Tenant
from vectors.index import IndexUnavailable

logger = logging.getLogger(__name__)

STEP = 200  # images per step: one index call and one transaction
INLINE_MAX = 100  # actions on at most this many images run in the request that asks for them
STALE_AFTER = timedelta(minutes=2)  # a running action whose steps stopped this long ago was interrupted
MAX_ERRORS_KEPT = 20


def selection(action: BulkAction) -> QuerySet[ImageAsset]:
    """The action's images that are still there, in the order it takes them."""
    images: QuerySet[ImageAsset] = ImageAsset.objects.for_tenant(action.tenant).filter(created_at__lte=action.cutoff)
    if action.asset_ids:
        images = images.filter(id__in=[uuid.UUID(i) for i in action.asset_ids])
    else:
        images = filters_from_json(action.filters).apply(images)
        if action.filters.get("status"):
            images = images.filter(status=action.filters["status"])
    if action.kind == BulkActionKind.REQUEUE:
        images = images.filter(status=AssetStatus.FAILED)
    elif action.kind == BulkActionKind.RELABEL:
        images = images.filter(status=AssetStatus.READY)
    return images.order_by("created_at", "id")


def filters_to_json(filters: MetadataFilters, status: str) -> dict[str, Any]:
    return {
        "category": filters.category,
        "source": filters.source,
        "tags": list(filters.tags),
        "labels": list(filters.labels),
        "uploaded_from": filters.uploaded_from.isoformat() if filters.uploaded_from else None,
        "uploaded_to": filters.uploaded_to.isoformat() if filters.uploaded_to else None,
        "status": status,
    }


def filters_from_json(data: dict[str, Any]) -> MetadataFilters:
    return MetadataFilters(
        category=data.get("category") or "",
        source=data.get("source") or "",
        tags=tuple(data.get("tags") or ()),
        labels=tuple(data.get("labels") or ()),
        uploaded_from=datetime.fromisoformat(data["uploaded_from"]).date() if data.get("uploaded_from") else None,
        uploaded_to=datetime.fromisoformat(data["uploaded_to"]).date() if data.get("uploaded_to") else None,
    )


def bulk_action_start(
    *,
    tenant: Tenant,
    created_by: User | None,
    key: str,
    kind: str,
    tags: Sequence[str] = (),
    value: str = "",
    asset_ids: Sequence[uuid.UUID] = (),
    filters: MetadataFilters | None = None,
    status: str = "",
) -> tuple[BulkAction, bool]:
    """Records the action and starts it (see the module's notes on where). Either `asset_ids` (the
    tenant's images among them) or `filters` (every image matching, and `status`) chooses the images.
    Returns (action, created); the same `key` again returns the action it made the first time."""
    existing = BulkAction.objects.filter(tenant=tenant, key=key).first()
    if existing is not None:
        return existing, False
    action = BulkAction(
        tenant=tenant,
        created_by=created_by,
        key=key,
        kind=kind,
        tags=list(tags),
        value=value.strip(),
        asset_ids=[str(i) for i in asset_ids],
        filters={} if asset_ids or filters is None else filters_to_json(filters, status),
        cutoff=timezone.now(),
    )
    action.total = selection(action).count()
    action.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            action.save(force_insert=True)
    except IntegrityError:  # the same form, sent twice at once: the other request made it
        return BulkAction.objects.get(tenant=tenant, key=key), False
    _dispatch(action)
    action.refresh_from_db()
    return action, True


def _dispatch(action: BulkAction) -> None:
    if action.total <= INLINE_MAX or settings.EMBED_RUNNER == "inline":
        bulk_action_run_now(action=action)
    elif settings.EMBED_RUNNER == "celery":
        from ingestion.tasks import run_bulk_action  # the task module imports this one to run it

        transaction.on_commit(lambda: run_bulk_action.delay(str(action.id)))
    else:
        transaction.on_commit(lambda: _run_in_thread(action.id))


THREAD_RETRIES = (5, 15, 30, 60, 120, 300)  # seconds between tries while Chroma is out of reach


def _run_in_thread(action_id: uuid.UUID) -> None:
    def run() -> None:
        try:
            for pause in (*THREAD_RETRIES, None):
                try:
                    bulk_action_run(action_id=action_id)
                    return
                except IndexUnavailable as exc:
                    if pause is None:
                        action = BulkAction.objects.get(id=action_id)
                        bulk_action_stop(action=action, reason=f"Stopped: {exc}. Send the action again to finish it.")
                        return
                    time.sleep(pause)
        except Exception:
            logger.exception("Bulk action %s stopped; it is taken up again later", action_id)
        finally:
            close_old_connections()

    threading.Thread(target=run, name=f"bulk-{action_id}", daemon=True).start()


def _claim(action_id: uuid.UUID) -> BulkAction | None:
    """The action, now running here; None if it is finished or running elsewhere (recently active)."""
    stale = timezone.now() - STALE_AFTER
    claimable = Q(status=BulkActionStatus.PENDING) | Q(status=BulkActionStatus.RUNNING, updated_at__lt=stale)
    if not BulkAction.objects.filter(claimable, id=action_id).update(
        status=BulkActionStatus.RUNNING, updated_at=timezone.now()
    ):
        return None
    return BulkAction.objects.select_related("tenant").get(id=action_id)


def bulk_action_run(*, action_id: uuid.UUID | str) -> BulkAction | None:
    """Runs the action from where it stopped to its end. Raises IndexUnavailable (the action stays
    running, resumable) when Chroma cannot be reached; the caller retries later."""
    action = _claim(uuid.UUID(str(action_id)))
    if action is None:
        return None
    while True:
        images = selection(action)
        if action.cursor:
            at, last = datetime.fromisoformat(action.cursor[0]), uuid.UUID(action.cursor[1])
            images = images.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=last))
        step = list(images.select_related("tenant")[:STEP])
        if not step:
            break
        try:
            _run_step(action, step)
        except IndexUnavailable:
            BulkAction.objects.filter(id=action.id).update(status=BulkActionStatus.PENDING)  # to be run again
            raise
    BulkAction.objects.filter(id=action.id).update(
        status=BulkActionStatus.DONE, finished_at=timezone.now(), updated_at=timezone.now()
    )
    action.refresh_from_db()
    return action


def _run_step(action: BulkAction, step: list[ImageAsset]) -> None:
    changed, refused = 0, {}
    last = step[-1]
    with transaction.atomic():
        if action.kind == BulkActionKind.DELETE:
            changed = assets_delete(tenant=action.tenant, assets=step)
        elif action.kind == BulkActionKind.REQUEUE:
            changed = assets_requeue(assets=step)
        elif action.kind == BulkActionKind.RELABEL:
            changed = assets_relabel(tenant=action.tenant, assets=step)
        else:
            report = assets_change_metadata(
                assets=step,
                add_tags=action.tags if action.kind == BulkActionKind.ADD_TAGS else (),
                remove_tags=action.tags if action.kind == BulkActionKind.REMOVE_TAGS else (),
                category=action.value if action.kind == BulkActionKind.SET_CATEGORY else None,
                source=action.value if action.kind == BulkActionKind.SET_SOURCE else None,
            )
            changed, refused = len(report.changed), report.refused
        errors = (action.errors + list(refused.values()))[:MAX_ERRORS_KEPT]
        BulkAction.objects.filter(id=action.id).update(
            processed=F("processed") + len(step),
            changed=F("changed") + changed,
            failed=F("failed") + len(refused),
            errors=errors,
            cursor=[last.created_at.isoformat(), str(last.id)],
            updated_at=timezone.now(),
        )
    action.refresh_from_db()


def bulk_action_stop(*, action: BulkAction, reason: str) -> None:
    """Marks an action that cannot go on (the index out of reach too long), with the reason."""
    BulkAction.objects.filter(id=action.id).exclude(status=BulkActionStatus.DONE).update(
        status=BulkActionStatus.FAILED,
        errors=[*action.errors, reason][-MAX_ERRORS_KEPT:],
        finished_at=timezone.now(),
    )


def bulk_actions_resume(*, at_start: bool = False) -> int:
    """Starts again the actions a process left waiting or running when it stopped: those whose steps
    stopped STALE_AFTER ago or more, or, `at_start` of the only process that runs them (the
    single-process default), every one not finished."""
    unfinished = BulkAction.objects.filter(status__in=[BulkActionStatus.PENDING, BulkActionStatus.RUNNING])
    if at_start:
        unfinished.update(status=BulkActionStatus.PENDING)
    else:
        unfinished = unfinished.filter(updated_at__lt=timezone.now() - STALE_AFTER)
    ids = list(unfinished.values_list("id", flat=True))
    for action_id in ids:
        if settings.EMBED_RUNNER == "celery":
            from ingestion.tasks import run_bulk_action

            run_bulk_action.delay(str(action_id))
        else:
            _run_in_thread(action_id)
    return len(ids)


def bulk_action_run_now(*, action: BulkAction) -> None:
    """Runs a small action in the request that asked for it; Chroma out of reach stops it with the
    reason (what was done stays done; sending it again finishes it)."""
    try:
        bulk_action_run(action_id=action.id)
    except IndexUnavailable as exc:
        bulk_action_stop(action=action, reason=f"Stopped: {exc}. Send the action again to finish it.")
