"""What ingestion tells a tenant's webhooks: an image became searchable (`image.ready`), could not be
processed (`image.failed`) or was deleted (`image.deleted`). Called inside the transaction that makes
the change, so the event is recorded exactly when the change commits (`webhooks.services.events_emit`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ingestion.models import ImageAsset
from webhooks.models import EventType
from webhooks.services import events_emit


def image_event_data(asset: ImageAsset) -> dict[str, Any]:
    return {
        "id": str(asset.id),
        "tenant": asset.tenant.slug,
        "filename": asset.original_filename,
        "status": asset.status,
        "failure_reason": asset.failure_reason,
        "category": asset.category,
        "source": asset.source,
        "tags": list(asset.tags),
        "labels": list(asset.labels),
        "width": asset.width,
        "height": asset.height,
        "byte_size": asset.byte_size,
        "uploaded_at": asset.created_at.isoformat(),
    }


def images_emit(event_type: EventType, assets: Iterable[ImageAsset]) -> None:
    by_tenant: dict[int, list[ImageAsset]] = defaultdict(list)
    for asset in assets:
        by_tenant[asset.tenant_id].append(asset)
    for rows in by_tenant.values():
        events_emit(tenant=rows[0].tenant, event_type=event_type, items=[image_event_data(a) for a in rows])
