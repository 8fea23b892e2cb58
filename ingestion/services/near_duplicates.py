"""Near-duplicates: a tenant's images whose vectors lie within NEAR_DUPLICATE_DISTANCE of each other
(re-encoded, resized or slightly cropped copies of one photograph), recorded when an image becomes
ready with one index query per image (a batch's in one request), and the groups they form."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from django.conf import settings

from ingestion.models import AssetStatus, ImageAsset, NearDuplicate
from tenants.models import Tenant
from vectors import index
from vectors.index import Vector

NEIGHBOURS = 20  # nearest images looked at per new image; a group larger than this still links up


def near_duplicates_record(
    *, tenant: Tenant, images: Sequence[tuple[ImageAsset, Vector]], space: str | None = None
) -> int:
    """For each image just made ready, the tenant's images within the distance (in the active
    model's space, the one `space` names), recorded both ways: the batch's vectors asked in one index
    request. Returns the number of pairs recorded."""
    limit = settings.NEAR_DUPLICATE_DISTANCE
    found: dict[tuple[uuid.UUID, uuid.UUID], float] = {}
    if not images:
        return 0
    neighbours = index.query_vectors_many(
        tenant=tenant, space=space, embeddings=np.stack([vector for _, vector in images]), limit=NEIGHBOURS + 1
    )
    for (asset, _), hits in zip(images, neighbours, strict=True):
        for hit in hits:
            if hit.distance <= limit and hit.id != str(asset.id):
                other = uuid.UUID(hit.id)
                found[(asset.id, other)] = found[(other, asset.id)] = max(0.0, hit.distance)
    if not found:
        return 0
    existing = set(
        ImageAsset.objects.for_tenant(tenant).filter(id__in={b for _, b in found}).values_list("id", flat=True)
    )
    rows = [
        NearDuplicate(tenant=tenant, image_id=a, duplicate_id=b, distance=d)
        for (a, b), d in found.items()
        if a in existing and b in existing
    ]
    NearDuplicate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows) // 2


def near_duplicate_groups(tenant: Tenant) -> list[list[ImageAsset]]:
    """The tenant's ready images linked by near-duplicate pairs, in groups (connected: a copy of a
    copy belongs too), largest first, each oldest upload first."""
    links: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for a, b in NearDuplicate.objects.filter(tenant=tenant).values_list("image_id", "duplicate_id"):
        links[a].add(b)
        links[b].add(a)
    assets = ImageAsset.objects.for_tenant(tenant).filter(id__in=list(links), status=AssetStatus.READY).in_bulk()
    seen: set[uuid.UUID] = set()
    groups = []
    for start in links:
        if start in seen or start not in assets:
            continue
        group, todo = [], [start]
        seen.add(start)
        while todo:
            current = todo.pop()
            group.append(assets[current])
            for other in links[current]:
                if other not in seen and other in assets:
                    seen.add(other)
                    todo.append(other)
        if len(group) > 1:
            groups.append(sorted(group, key=lambda a: (a.created_at, str(a.id))))
    return sorted(groups, key=lambda g: (-len(g), g[0].created_at))


def near_duplicate_group(tenant: Tenant, asset: ImageAsset) -> list[ImageAsset]:
    """The group `asset` belongs to, itself included; just the image when it has no near-duplicate."""
    for group in near_duplicate_groups(tenant):
        if any(member.id == asset.id for member in group):
            return group
    return [asset]
