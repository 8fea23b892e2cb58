from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_init

from ingestion.services.pipeline import assets_embed
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


@worker_init.connect
def load_model_before_taking_work(**_: Any) -> None:
    """A worker whose weights cannot be loaded must stop at once with the reason, not fail every task.
    (Celery logs and ignores exceptions from signal handlers; SystemExit does stop it.)"""
    try:
        get_embedder()
    except EmbeddingModelUnavailable as exc:
        raise SystemExit(f"The worker cannot start: {exc}") from exc
