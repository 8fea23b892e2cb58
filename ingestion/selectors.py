from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from ingestion.models import AssetStatus, ImageAsset
from tenants.models import Tenant


def asset_for_tenant(tenant: Tenant, asset_id: object) -> ImageAsset:
    """The tenant's image, or 404: the same answer for a missing id and another tenant's."""
    try:
        key = uuid.UUID(str(asset_id))
    except ValueError:
        raise Http404("No such image.") from None
    asset = ImageAsset.objects.for_tenant(tenant).filter(id=key).first()
    if asset is None:
        raise Http404("No such image.")
    return asset


def assets_by_ids(tenant: Tenant, asset_ids: Sequence[str]) -> QuerySet[ImageAsset]:
    keys = []
    for raw in asset_ids:
        try:
            keys.append(uuid.UUID(raw))
        except ValueError:
            continue
    return ImageAsset.objects.for_tenant(tenant).filter(id__in=keys)


def recent_assets(tenant: Tenant, *, limit: int = 50) -> QuerySet[ImageAsset]:
    return ImageAsset.objects.for_tenant(tenant).select_related("tenant").order_by("-created_at")[:limit]


def status_counts(tenant: Tenant) -> dict[str, int]:
    counts = {status: 0 for status in AssetStatus.values}
    rows = ImageAsset.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def tenant_storage_used(tenant: Tenant) -> int:
    return int(ImageAsset.objects.for_tenant(tenant).aggregate(total=Sum("byte_size"))["total"] or 0)
