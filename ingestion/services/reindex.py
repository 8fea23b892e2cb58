"""A model change without downtime (`manage.py reindex`).

`reindex_start` records the new model as a space being built (`VectorSpace`, state building) after
loading it once, so a name or weights that cannot work are refused at once. From then on every
process embeds new uploads with both models (`ingestion.spaces`), while search keeps answering from
the active one. The build (`reindex_advance`, one step at a time; `reindex_run`, to the end) takes
each tenant's ready images in upload order, STEP at a time, embeds them with the new model from their
derivatives and writes them to the tenant's collection in the new space, recording how far it came
(`ReindexProgress`), so a build stopped anywhere (a crash, a deploy, Chroma out of reach) resumes
where it stopped and writes nothing twice (upserts by image id). A tenant is finished when every
ready image has a vector in the new space: the images that became ready meanwhile are embedded, and
vectors of images deleted meanwhile are removed.

When every tenant is finished the new space becomes active in one transaction (the old one retired:
its vectors stay until `reindex_drop_old`), images that became ready during the switch are checked
once more, running processes pick the change up within VECTOR_SPACES_REFRESH_SECONDS, and tenants
with an auto-tag vocabulary are labelled again with the new model. Where the build runs: a Celery
task in the full stack (`ingestion.tasks.run_reindex`, resumed by the beat), the background
embedder of the single-process default between uploads, or the command itself when nothing else
holds the index."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ingestion import spaces
from ingestion.models import (
    AssetStatus,
    BulkActionKind,
    ImageAsset,
    LabelVocabulary,
    ReindexProgress,
    VectorSpace,
    VectorSpaceState,
)
from ingestion.services.pipeline import assets_embed_into
from tenants.models import Tenant
from vectors import index
from vectors.embedding import ModelSpec, get_embedder, model_key, spec_for

logger = logging.getLogger(__name__)

STEP = 128  # images per step: one read of rows, forward passes, one write per tenant, one progress update


class ReindexRefused(Exception):
    """The asked change cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class TenantProgress:
    tenant: str
    done: int
    total: int
    percent: int
    finished: bool


@dataclass(frozen=True)
class ReindexStatus:
    active: VectorSpace | None
    building: VectorSpace | None
    retired: list[VectorSpace]
    tenants: list[TenantProgress]

    @property
    def done(self) -> int:
        return sum(t.done for t in self.tenants)

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tenants)


def _record_active() -> VectorSpace:
    """The active space's row; the settings' model is recorded as active when no reindex ever ran."""
    active = VectorSpace.objects.select_for_update().filter(state=VectorSpaceState.ACTIVE).first()
    if active is not None:
        return active
    spec = ModelSpec.from_settings()
    key = model_key(spec)
    active, _ = VectorSpace.objects.update_or_create(
        key=key,
        defaults={
            "model": spec.name,
            "pretrained": spec.pretrained,
            "state": VectorSpaceState.ACTIVE,
            "activated_at": timezone.now(),
        },
    )
    return active


def reindex_start(*, model: str, pretrained: str) -> tuple[VectorSpace, bool]:
    """Records the build of `model` with `pretrained` weights (a tag or a checkpoint path), after
    loading them once: EmbeddingModelUnavailable says why they cannot be used. Returns (the space,
    whether it is new); the same model asked again while it builds resumes it. ReindexRefused for
    the active model, or while another model is being built."""
    spec = spec_for(name=model, pretrained=pretrained)
    key = model_key(spec)  # a checkpoint path that is no file is refused here
    get_embedder(spec=spec)  # and weights that cannot be loaded here, before anything is recorded
    with transaction.atomic():
        active = _record_active()
        if active.key == key:
            raise ReindexRefused(f"{model} ({pretrained}) is the active model already: nothing to build.")
        building = VectorSpace.objects.select_for_update().filter(state=VectorSpaceState.BUILDING).first()
        if building is not None and building.key != key:
            raise ReindexRefused(
                f"{building} is being built. Let it finish (`manage.py reindex` resumes it) or cancel it "
                "(`manage.py reindex --cancel`) first."
            )
        if building is not None:
            return building, False
        space, created = VectorSpace.objects.get_or_create(
            key=key, defaults={"model": model, "pretrained": pretrained, "state": VectorSpaceState.BUILDING}
        )
        if not created:  # a model used before: built again from the start, its old vectors overwritten
            ReindexProgress.objects.filter(space=space).delete()
            space.model, space.pretrained, space.state, space.error = model, pretrained, VectorSpaceState.BUILDING, ""
            space.created_at, space.activated_at, space.retired_at = timezone.now(), None, None
            space.save()
        _add_tenants(space)
    spaces.refresh()
    return space, True


def _add_tenants(space: VectorSpace) -> None:
    """A progress row for every tenant that has none yet (tenants made during the build too)."""
    missing = Tenant.objects.exclude(id__in=ReindexProgress.objects.filter(space=space).values("tenant_id"))
    ReindexProgress.objects.bulk_create(
        [
            ReindexProgress(space=space, tenant=tenant, total=_ready(tenant).count())
            for tenant in missing.order_by("id")
        ],
        ignore_conflicts=True,
    )


def _ready(tenant: Tenant) -> QuerySet[ImageAsset]:
    return ImageAsset.objects.for_tenant(tenant).filter(status=AssetStatus.READY)


def building_space() -> VectorSpace | None:
    return VectorSpace.objects.filter(state=VectorSpaceState.BUILDING).first()


# How long a process holds a tenant's step (`ReindexProgress.leased_until`); a process that died
# holding one leaves it to another after this.
LEASE = timedelta(minutes=10)

STEPPED, WAITING, DONE = "stepped", "waiting", "done"
Advance = str  # STEPPED: a step was made; WAITING: other processes hold the last tenants; DONE: nothing left


def reindex_advance(*, limit: int | None = None) -> Advance:
    """One step of the build: the next images of one unfinished tenant (or that tenant's final
    check), or the switch once every tenant is finished. A tenant's step is leased to one process
    (a conditional update, no transaction held open while the model runs: the single-process
    default's SQLite allows one writer at a time, and uploads must not wait for a step)."""
    space = building_space()
    if space is None:
        return DONE
    _add_tenants(space)
    spec = spaces.spec_of(space)
    unfinished = ReindexProgress.objects.filter(space=space, finished_at__isnull=True)
    for progress in unfinished.order_by("tenant_id").select_related("tenant")[:20]:
        now = timezone.now()
        free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        if not unfinished.filter(free, pk=progress.pk).update(leased_until=now + LEASE):
            continue  # another process holds this tenant
        try:
            progress.refresh_from_db()
            if progress.finished_at is None:
                _step(progress, spec, limit or STEP)
        finally:
            ReindexProgress.objects.filter(pk=progress.pk).update(leased_until=None)
        return STEPPED
    if unfinished.exists():
        return WAITING
    _switch(space)
    return DONE


def _step(progress: ReindexProgress, spec: ModelSpec, limit: int) -> None:
    tenant = progress.tenant
    images = _ready(tenant).select_related("tenant").order_by("created_at", "id")
    if progress.cursor:
        at, last = datetime.fromisoformat(progress.cursor[0]), uuid.UUID(progress.cursor[1])
        images = images.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=last))
    step = list(images[:limit])
    if step:
        assets_embed_into(assets=step, spec=spec)
        progress.done += len(step)
        progress.total = max(progress.total, progress.done)
        progress.cursor = [step[-1].created_at.isoformat(), str(step[-1].id)]
        progress.save(update_fields=["done", "total", "cursor", "updated_at"])
        return
    _complete_tenant(tenant, spec)
    progress.total = progress.done = _ready(tenant).count()
    progress.finished_at = timezone.now()
    progress.save(update_fields=["done", "total", "finished_at", "updated_at"])


def _complete_tenant(tenant: Tenant, spec: ModelSpec, *, since: datetime | None = None) -> None:
    """Every ready image of the tenant (those that became ready `since`, when given) has a vector in
    the new space, and no image that is gone has one."""
    key = model_key(spec)
    ready = _ready(tenant)
    if since is not None:
        ready = ready.filter(embedded_at__gte=since)
        wanted = {str(i) for i in ready.values_list("id", flat=True)}
        missing = wanted - set(index.fetch_metadata(tenant=tenant, space=key, ids=sorted(wanted)))
    else:
        stored = index.vector_ids(tenant=tenant, space=key)
        missing = {str(i) for i in ready.values_list("id", flat=True)} - stored
        known = {str(i) for i in ImageAsset.objects.for_tenant(tenant).values_list("id", flat=True)}
        index.delete_vectors(tenant=tenant, space=key, ids=sorted(stored - known))
    found = list(ready.filter(id__in=missing).select_related("tenant"))
    for start in range(0, len(found), STEP):
        assets_embed_into(assets=found[start : start + STEP], spec=spec)


def _switch(space: VectorSpace) -> None:
    spec = spaces.spec_of(space)
    # What turned ready since each tenant was finished, embedded before the switch's short
    # transaction; an image that turns ready after this is written to both spaces by its worker,
    # which reads the live spaces again after each write.
    for tenant in Tenant.objects.order_by("id"):
        _complete_tenant(tenant, spec, since=space.created_at)
    with transaction.atomic():
        space = VectorSpace.objects.select_for_update().get(pk=space.pk)
        if space.state != VectorSpaceState.BUILDING:
            return  # another process switched it
        old = _record_active()
        old.state, old.retired_at = VectorSpaceState.RETIRED, timezone.now()
        old.save(update_fields=["state", "retired_at"])
        space.state, space.activated_at, space.error = VectorSpaceState.ACTIVE, timezone.now(), ""
        space.save(update_fields=["state", "activated_at", "error"])
        transaction.on_commit(_relabel_after_switch)
    spaces.refresh()
    logger.info("The active model is now %s; %s is retired (its vectors stay until reindex --drop-old)", space, old)


def _relabel_after_switch() -> None:
    """Labels come from the active model: tenants with a vocabulary are labelled again with the new
    one (each relabelling reads the live spaces afresh). One tenant's failure leaves the others'."""
    from ingestion.services.bulk import bulk_action_start  # bulk imports the pipeline, which this module uses

    spaces.refresh()  # this runs as the switch commits: the relabelling must read the new model
    for vocabulary in LabelVocabulary.objects.exclude(labels=[]).select_related("tenant"):
        try:
            bulk_action_start(
                tenant=vocabulary.tenant, created_by=None, key=f"relabel-{uuid.uuid4()}", kind=BulkActionKind.RELABEL
            )
        except Exception:
            logger.exception("Could not relabel %s after the switch; save its vocabulary again", vocabulary.tenant)


def reindex_run(*, on_step: Callable[[], None] | None = None) -> VectorSpace | None:
    """Runs the build to its end and switches; returns the space now active, or None when nothing
    was being built. An error stops it resumable, its reason recorded on the space."""
    space = building_space()
    if space is None:
        return None
    try:
        while (advance := reindex_advance()) != DONE:
            if advance == WAITING:
                time.sleep(1)  # another process holds the last tenants
            elif on_step is not None:
                on_step()
    except Exception as exc:
        VectorSpace.objects.filter(pk=space.pk).update(error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    space.refresh_from_db()
    return space


def reindex_work(*, seconds: float) -> bool:
    """Runs the build for about `seconds` (whole steps); returns whether this process should go on
    (False when the build is done, or when other processes hold its last tenants: they finish it).
    A Celery task works in such slices and queues the next one, so uploads embedded on the same
    queue take turns with the build instead of waiting for its end."""
    deadline = time.monotonic() + seconds
    space = building_space()
    try:
        while reindex_advance() == STEPPED:
            if time.monotonic() >= deadline:
                return True
    except Exception as exc:
        if space is not None:
            VectorSpace.objects.filter(pk=space.pk).update(error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return False  # done, or WAITING: the processes holding the last tenants finish and switch


def reindex_cancel() -> VectorSpace | None:
    """Stops the build (no process writes to its space once it has read the change) and drops what
    it wrote; the active model is untouched. Chroma out of reach while dropping: the build is
    cancelled all the same, and `reindex_drop_old` removes its vectors later."""
    with transaction.atomic():
        space = VectorSpace.objects.select_for_update().filter(state=VectorSpaceState.BUILDING).first()
        if space is None:
            return None
        space.state, space.retired_at = VectorSpaceState.DROPPED, timezone.now()
        space.save(update_fields=["state", "retired_at"])
        ReindexProgress.objects.filter(space=space).delete()
    spaces.refresh()
    _drop_vectors(space)
    return space


def _drop_vectors(space: VectorSpace) -> None:
    for key in index.stored_tenant_keys(space.key):
        index.drop_tenant_key(key, space.key)


def reindex_drop_old() -> tuple[list[VectorSpace], list[VectorSpace]]:
    """Removes the vectors of the models switched away from (every tenant's collection in them), and
    whatever a cancelled build left. Returns (the spaces emptied, those left for now): a space that
    left service less than VECTOR_SPACES_REFRESH_SECONDS ago may still be read by a process that has
    not seen the change yet, and is left for a later run."""
    settled = timezone.now() - timedelta(seconds=settings.VECTOR_SPACES_REFRESH_SECONDS + 5)
    dropped, waiting = [], []
    for space in VectorSpace.objects.filter(state__in=[VectorSpaceState.RETIRED, VectorSpaceState.DROPPED]):
        if space.retired_at and space.retired_at > settled:
            waiting.append(space)
            continue
        _drop_vectors(space)
        if space.state == VectorSpaceState.RETIRED:
            VectorSpace.objects.filter(pk=space.pk, state=VectorSpaceState.RETIRED).update(
                state=VectorSpaceState.DROPPED
            )
            ReindexProgress.objects.filter(space=space).delete()
            dropped.append(space)
    return dropped, waiting


def reindex_status() -> ReindexStatus:
    rows = list(VectorSpace.objects.exclude(state=VectorSpaceState.DROPPED))
    building = next((s for s in rows if s.state == VectorSpaceState.BUILDING), None)
    tenants = []
    if building is not None:
        for progress in ReindexProgress.objects.filter(space=building).select_related("tenant").order_by("tenant_id"):
            tenants.append(
                TenantProgress(
                    tenant=progress.tenant.slug,
                    done=progress.done,
                    total=progress.total,
                    percent=progress.percent,
                    finished=progress.finished_at is not None,
                )
            )
    return ReindexStatus(
        active=next((s for s in rows if s.state == VectorSpaceState.ACTIVE), None),
        building=building,
        retired=[s for s in rows if s.state == VectorSpaceState.RETIRED],
        tenants=tenants,
    )


# A build whose steps stopped this long ago was interrupted. Long enough that a slice waiting behind an
# upload backlog is not taken for lost (a second chain of slices would only compete for the same steps).
STALE_AFTER = timedelta(minutes=10)


def reindex_resume() -> bool:
    """Queues the build again when its steps stopped STALE_AFTER ago or more (Celery beat)."""
    space = building_space()
    if space is None:
        return False
    recent = timezone.now() - STALE_AFTER
    if ReindexProgress.objects.filter(space=space, updated_at__gte=recent).exists() or space.created_at >= recent:
        return False
    from ingestion.tasks import run_reindex  # the task module imports this one to run it

    run_reindex.delay()
    return True


def reindex_dispatch() -> str:
    """Starts the build where this setup runs background work; returns where, in words, or "" when
    the caller (the command) should run it itself."""
    if settings.EMBED_RUNNER == "celery":
        from ingestion.tasks import run_reindex  # the task module imports this one to run it

        run_reindex.delay()
        return "a Celery worker builds it in the background"
    if settings.EMBED_RUNNER == "thread":
        try:
            index.check_available()
        except index.IndexLocked:
            return "the running service builds it in the background, between uploads"
    return ""
