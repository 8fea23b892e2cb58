"""Images back into the pipeline: failed ones on request, ready ones whose vector went missing, and
the periodic sweep of those left pending or processing too long."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.pipeline import enqueue_embedding


def assets_requeue(*, assets: Iterable[ImageAsset]) -> int:
    """Gives failed (or stuck) images a fresh set of attempts and queues them; ready ones stay."""
    return assets_reembed(assets=[asset for asset in assets if asset.status != AssetStatus.READY])


def assets_reembed(*, assets: Iterable[ImageAsset]) -> int:
    """Queues images again whatever their state, e.g. ready ones whose vector went missing."""
    ids = [asset.id for asset in assets]
    ImageAsset.objects.filter(id__in=ids).update(
        status=AssetStatus.PENDING, attempts=0, failure_reason="", claim_token="", updated_at=timezone.now()
    )
    enqueue_embedding(ids)
    return len(ids)


def assets_requeue_stale() -> int:
    """Queues again the images left pending or processing for too long (broker down, worker lost).
    Processing ones go back to pending, their attempt still counted: the task that claimed them is
    gone, and a poison image must still reach EMBED_MAX_ATTEMPTS."""
    cutoff = timezone.now() - timedelta(seconds=settings.EMBED_STALE_AFTER_SECONDS)
    ids = list(
        ImageAsset.objects.filter(
            status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING], updated_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    ImageAsset.objects.filter(id__in=ids).update(status=AssetStatus.PENDING, claim_token="", updated_at=timezone.now())
    enqueue_embedding(ids)
    return len(ids)
