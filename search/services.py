"""The three ways to search a tenant's images: by text, by an uploaded picture, and "more like this"
from an image already indexed (its stored vector is reused, never re-embedded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus, ImageAsset
from ingestion.selectors import assets_by_ids
from ingestion.services.requeue import assets_reembed
from ingestion.validation import validate_image
from tenants.models import Tenant
from vectors import index
from vectors.embedding import get_embedder
from vectors.index import Vector

MAX_QUERY_LENGTH = 1000
NO_FILTERS = MetadataFilters()


class SimilarUnavailable(Exception):
    """The image has no vector yet (still processing, or failed)."""


@dataclass(frozen=True)
class SearchResult:
    asset: ImageAsset
    score: float
    distance: float


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return settings.SEARCH_DEFAULT_LIMIT
    return max(1, min(int(limit), settings.SEARCH_MAX_LIMIT))


def _results(
    tenant: Tenant,
    hits: Sequence[index.Hit],
    *,
    limit: int,
    min_score: float | None,
    exclude: str | None = None,
) -> list[SearchResult]:
    kept = [hit for hit in hits if hit.id != exclude and (min_score is None or hit.score >= min_score)]
    # Only the tenant's images that are ready and still exist: the database is the authority. Rows are
    # fetched by primary key through the tenant-scoped selector: a few index lookups however large the tenant.
    found = assets_by_ids(tenant, [hit.id for hit in kept]).filter(status=AssetStatus.READY).select_related("tenant")
    rows = {str(asset.id): asset for asset in found}
    results = []
    for hit in kept:
        asset = rows.get(hit.id)
        if asset is not None:
            results.append(SearchResult(asset=asset, score=hit.score, distance=hit.distance))
    return results[:limit]


def _query(
    tenant: Tenant,
    vector: Vector,
    *,
    limit: int,
    filters: MetadataFilters,
    min_score: float | None,
    exclude: str | None = None,
) -> list[SearchResult]:
    limit = clamp_limit(limit)
    # A little headroom for the image itself (more like this) and rows not ready any more.
    hits = index.query_vectors(
        tenant=tenant, embedding=vector, limit=limit + 1 + (exclude is not None), where=filters.to_where()
    )
    return _results(tenant, hits, limit=limit, min_score=min_score, exclude=exclude)


def search_by_text(
    *, tenant: Tenant, text: str, limit: int, filters: MetadataFilters = NO_FILTERS, min_score: float | None = None
) -> list[SearchResult]:
    [vector] = get_embedder("text").embed_texts([text[:MAX_QUERY_LENGTH]])
    return _query(tenant, vector, limit=limit, filters=filters, min_score=min_score)


def search_by_image(
    *,
    tenant: Tenant,
    file: IO[bytes],
    byte_size: int,
    limit: int,
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
) -> list[SearchResult]:
    """The query picture is validated like an upload (ValidationError if refused) and never stored."""
    validated = validate_image(file, byte_size=byte_size)
    [vector] = get_embedder("image").embed_images([validated.upright_rgb])
    return _query(tenant, vector, limit=limit, filters=filters, min_score=min_score)


def search_similar(
    *,
    tenant: Tenant,
    asset: ImageAsset,
    limit: int,
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
) -> list[SearchResult]:
    if asset.tenant_id != tenant.pk:
        # Callers pass the tenant's own image (asset_for_tenant); anything else is their bug, refused
        # before another tenant's vector, or its name in an error message, could reach an answer.
        raise ValueError("search_similar takes an image of the tenant it searches.")
    vectors = index.fetch_vectors(tenant=tenant, ids=[str(asset.id)])
    if str(asset.id) not in vectors:
        raise SimilarUnavailable(
            f"{asset.original_filename} is {asset.get_status_display().lower()}; it has no vector yet."
        )
    return _query(
        tenant, vectors[str(asset.id)], limit=limit, filters=filters, min_score=min_score, exclude=str(asset.id)
    )


@dataclass
class ReconcileReport:
    requeued: int = 0
    orphans_removed: int = 0
    untagged_removed: int = 0
    collections_dropped: int = 0


def index_reconcile(*, dry_run: bool = False) -> ReconcileReport:
    """Makes Chroma agree with the database: ready images without a vector are queued again,
    vectors without an image are removed, vectors without the right tenant key are removed, and
    collections of tenants that no longer exist are dropped."""
    report = ReconcileReport()
    tenants = list(Tenant.objects.all())
    for tenant in tenants:
        rows = dict(ImageAsset.objects.for_tenant(tenant).values_list("id", "status"))
        known = {str(key) for key in rows}
        ready = {str(key) for key, status in rows.items() if status == AssetStatus.READY}
        stored = index.vector_ids(tenant=tenant)
        missing = ready - stored
        orphans = stored - known
        report.requeued += len(missing)
        report.orphans_removed += len(orphans)
        if dry_run:
            continue
        if missing:
            assets_reembed(assets=ImageAsset.objects.for_tenant(tenant).filter(id__in=missing))
        index.delete_vectors(tenant=tenant, ids=sorted(orphans))
        report.untagged_removed += index.remove_untagged_vectors(tenant=tenant)
    gone = index.stored_tenant_keys() - {tenant.vector_key for tenant in tenants}
    report.collections_dropped = len(gone)
    if not dry_run:
        for key in gone:
            index.drop_tenant_key(key)
    return report
