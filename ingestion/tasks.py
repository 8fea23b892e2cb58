from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_init

from ingestion.services.bulk import bulk_action_run, bulk_actions_resume
from ingestion.services.pipeline import assets_embed
from ingestion.services.reindex import reindex_resume, reindex_work
from ingestion.services.requeue import assets_requeue_stale
from vectors.embedding import EmbeddingModelUnavailable, get_embedder
from vectors.index import IndexUnavailable


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
    name="ingestion.tasks.embed_assets",
)
def embed_assets(self: Any, asset_ids: list[str]) -> dict[str, int]:
    try:
        report = assets_embed(asset_ids=asset_ids, claim_token=self.request.id or "")
    except IndexUnavailable as exc:
        # 2, 4, 8 ... seconds, capped at 5 minutes; images stay pending meanwhile, nothing is lost.
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 300)) from exc
    return {"ready": len(report.ready), "failed": len(report.failed), "deferred": len(report.deferred)}


@shared_task(name="ingestion.tasks.requeue_stale_assets")
def requeue_stale_assets() -> int:
    return assets_requeue_stale()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=12,
    name="ingestion.tasks.run_bulk_action",
)
def run_bulk_action(self: Any, action_id: str) -> None:
    try:
        bulk_action_run(action_id=action_id)
    except IndexUnavailable as exc:
        # The action waits, resumable, where it stopped; the beat's resume_bulk_actions takes it up
        # again should the retries run out.
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 300)) from exc


@shared_task(name="ingestion.tasks.resume_bulk_actions")
def resume_bulk_actions() -> int:
    return bulk_actions_resume()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=12,
    name="ingestion.tasks.run_reindex",
)
def run_reindex(self: Any) -> bool:
    """Builds the model `manage.py reindex` asked for, a slice at a time (each slice queues the
    next), and switches at the end; resumable. Returns whether work remains."""
    try:
        remaining = reindex_work(seconds=REINDEX_SLICE_SECONDS)
    except IndexUnavailable as exc:
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 300)) from exc
    if remaining:
        run_reindex.delay()
    return remaining


REINDEX_SLICE_SECONDS = 30


@shared_task(name="ingestion.tasks.resume_reindex")
def resume_reindex() -> bool:
    """The beat's look at a build whose steps stopped (its worker died, its retries ran out)."""
    return reindex_resume()


@worker_init.connect
def load_model_before_taking_work(**_: Any) -> None:
    """A worker whose weights cannot be loaded must stop at once with the reason, not fail every task.
    (Celery logs and ignores exceptions from signal handlers; SystemExit does stop it.)"""
    try:
        get_embedder()
    except EmbeddingModelUnavailable as exc:
        raise SystemExit(f"The worker cannot start: {exc}") from exc
