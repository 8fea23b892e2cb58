from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from ingestion.models import AssetStatus, BulkAction, ImageAsset
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


# The library's orders: (field, descending). Every order ends on the id, so the position of an image
# in it is unique and a page can start right after (or end right before) one.
LIBRARY_ORDERS: dict[str, tuple[str, bool]] = {
    "newest": ("created_at", True),
    "oldest": ("created_at", False),
    "name": ("original_filename", False),
    "name_desc": ("original_filename", True),
    "largest": ("byte_size", True),
    "smallest": ("byte_size", False),
}


class BadCursor(ValueError):
    pass


@dataclass
class LibraryPage:
    assets: list[ImageAsset]
    next_cursor: str | None
    previous_cursor: str | None


def _cursor_of(asset: ImageAsset, field: str) -> str:
    value = getattr(asset, field)
    raw = [value.isoformat() if isinstance(value, datetime) else value, str(asset.id)]
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def _read_cursor(cursor: str, field: str) -> tuple[Any, uuid.UUID]:
    try:
        value, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if field == "created_at":
            value = datetime.fromisoformat(value)
        elif field == "byte_size":
            value = int(value)
        elif not isinstance(value, str):
            raise TypeError
        return value, uuid.UUID(key)
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise BadCursor("This page link is damaged; start again from the first page.") from None


def library_page(
    queryset: QuerySet[ImageAsset], *, sort: str, size: int, after: str = "", before: str = ""
) -> LibraryPage:
    """One page of the library in the given order, by keyset: the page after the image a cursor
    names (or before it), never an offset, so images uploaded or deleted meanwhile neither repeat
    nor skip anything on the next page. Raises BadCursor for a cursor that is not one."""
    field, descending = LIBRARY_ORDERS[sort]
    backwards = bool(before) and not after
    cursor = after or before
    forward_order = [f"-{field}", "-id"] if descending else [field, "id"]
    if cursor:
        value, key = _read_cursor(cursor, field)
        later = descending != backwards  # the next images have smaller values when descending
        op = "lt" if later else "gt"
        queryset = queryset.filter(Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"id__{op}": key}))
    order = [o[1:] if o.startswith("-") else f"-{o}" for o in forward_order] if backwards else forward_order
    rows = list(queryset.select_related("tenant").order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    has_next = (more and not backwards) or (backwards and bool(rows))
    has_previous = (more and backwards) or (bool(after) and bool(rows))
    return LibraryPage(
        assets=rows,
        next_cursor=_cursor_of(rows[-1], field) if has_next and rows else None,
        previous_cursor=_cursor_of(rows[0], field) if has_previous and rows else None,
    )


def status_counts_of(queryset: QuerySet[ImageAsset]) -> dict[str, int]:
    """Images per status in a (filtered, tenant-scoped) queryset, every status named."""
    counts = {status: 0 for status in AssetStatus.values}
    for row in queryset.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def bulk_actions_for_tenant(tenant: Tenant, *, limit: int = 5, kind: str = "") -> QuerySet[BulkAction]:
    actions = BulkAction.objects.filter(tenant=tenant)
    if kind:
        actions = actions.filter(kind=kind)
    return actions.order_by("-created_at")[:limit]


def bulk_action_for_tenant(tenant: Tenant, action_id: object) -> BulkAction:
    """The tenant's bulk action, or 404: the same answer for a missing id and another tenant's."""
    try:
        key = uuid.UUID(str(action_id))
    except ValueError:
        raise Http404("No such action.") from None
    action = BulkAction.objects.filter(tenant=tenant, id=key).first()
    if action is None:
        raise Http404("No such action.")
    return action
