"""The three ways to search a tenant's images: by text, by an uploaded picture, and "more like this"
from an image already indexed (its stored vector is reused, never re-embedded). Each may carry
several descriptions (`q`) and things the picture must not show (`not`), combined into one query
vector by `combine_query`; results are ranked within a window of the index's best matches, then
sorted and cut into pages (`SearchPage`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
from django.conf import settings
from numpy.typing import ArrayLike

from ingestion.filters import MetadataFilters
from ingestion.imaging import make_thumbnail
from ingestion.models import AssetStatus, ImageAsset
from ingestion.selectors import assets_by_ids
from ingestion.services.requeue import assets_reembed
from ingestion.validation import validate_image
from tenants.models import Tenant
from vectors import index
from vectors.embedding import get_embedder
from vectors.index import Vector

MAX_QUERY_LENGTH = 1000
MAX_QUERY_PARTS = 8  # descriptions (`q`) and, separately, exclusions (`not`) per search
NO_FILTERS = MetadataFilters()
WINDOW = index.MAX_RESULTS  # the ranked matches a search sorts and pages through
DEFAULT_IMAGE_WEIGHT = 0.5
DEFAULT_NOT_WEIGHT = 0.5
SORTS = ("score", "-uploaded_at", "uploaded_at")
QUERY_THUMBNAIL_SIZE = 160


class SimilarUnavailable(Exception):
    """The image has no vector yet (still processing, or failed)."""


class EmptyQuery(ValueError):
    """The parts of a query cancel out (e.g. the same words given as `q` and as `not` at weight 1)."""


@dataclass(frozen=True)
class SearchResult:
    asset: ImageAsset
    score: float
    distance: float


@dataclass(frozen=True)
class SearchPage:
    """One page of a search: `results` in the asked order; `count` is how many matches within the
    ranked window pass `min_score`. Iterating a page iterates its results."""

    results: list[SearchResult]
    count: int
    page: int
    limit: int
    sort: str = "score"

    @property
    def has_next(self) -> bool:
        return self.page * self.limit < self.count

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    def __iter__(self) -> Iterator[SearchResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, position: int) -> SearchResult:
        return self.results[position]


@dataclass(frozen=True)
class QueryPicture:
    """A query picture embedded once: its unit vector, and a small JPEG to show it above results."""

    vector: Vector
    thumbnail: bytes


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return settings.SEARCH_DEFAULT_LIMIT
    return max(1, min(int(limit), settings.SEARCH_MAX_LIMIT))


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    matrix: np.ndarray = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    unit: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


def combine_query(
    *,
    image: ArrayLike | None = None,
    texts: ArrayLike = (),
    negatives: ArrayLike = (),
    image_weight: float | None = None,
    not_weight: float | None = None,
) -> Vector:
    """The query vector, each part normalised first:
    `v = normalise(w*image + (1-w)*mean(q) - lam*mean(not))`, `w` = `image_weight` (0.5 by default)
    when there are both a picture and descriptions; with a picture alone its term is `image` (w = 1),
    with descriptions alone `mean(q)`; `lam` = `not_weight` (0.5 by default)."""
    w = DEFAULT_IMAGE_WEIGHT if image_weight is None else float(image_weight)
    lam = DEFAULT_NOT_WEIGHT if not_weight is None else float(not_weight)
    described, avoided = np.asarray(texts), np.asarray(negatives)
    q = _unit_rows(described) if described.size else None
    base: np.ndarray
    if image is not None:
        [picture] = _unit_rows(np.asarray(image).reshape(1, -1))
        base = picture if q is None else w * picture + (1 - w) * q.mean(axis=0)
    elif q is not None:
        base = q.mean(axis=0)
    else:
        raise EmptyQuery("A search needs a description or a picture.")
    if avoided.size:
        base = base - lam * _unit_rows(avoided).mean(axis=0)
    norm = float(np.linalg.norm(base))
    if norm < 1e-6:
        raise EmptyQuery("What the picture must not show cancels out what it should show.")
    return (base / norm).astype(np.float32)


def _embed_texts(texts: Sequence[str], negatives: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Descriptions and exclusions through the text tower in one batch."""
    parts = [text[:MAX_QUERY_LENGTH] for text in (*texts, *negatives)]
    vectors = get_embedder("text").embed_texts(parts) if parts else np.empty((0, 0), dtype=np.float32)
    return vectors[: len(texts)], vectors[len(texts) :]


def _as_texts(text: str | Sequence[str]) -> list[str]:
    return [text] if isinstance(text, str) else list(text)


def _ranked(
    tenant: Tenant,
    vector: Vector,
    *,
    limit: int,
    page: int,
    sort: str,
    filters: MetadataFilters,
    min_score: float | None,
    exclude: str | None = None,
) -> SearchPage:
    """The window of best matches, those passing `min_score` joined to the tenant's ready rows (the
    database is the authority: a vector whose row is gone or not ready never becomes a result), in
    the asked order, cut to the page."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    limit = clamp_limit(limit)
    page = max(1, int(page))
    hits = index.query_vectors(tenant=tenant, embedding=vector, limit=WINDOW, where=filters.to_where())
    kept = [hit for hit in hits if hit.id != exclude and (min_score is None or hit.score >= min_score)]
    # Rows fetched by primary key through the tenant-scoped selector: a few index lookups however large the tenant.
    found = assets_by_ids(tenant, [hit.id for hit in kept]).filter(status=AssetStatus.READY).select_related("tenant")
    rows = {str(asset.id): asset for asset in found}
    results = [
        SearchResult(asset=rows[hit.id], score=hit.score, distance=hit.distance) for hit in kept if hit.id in rows
    ]
    if sort != "score":  # a stable sort: images uploaded at the same moment keep their score order
        results.sort(key=lambda r: r.asset.created_at, reverse=sort.startswith("-"))
    start = (page - 1) * limit
    return SearchPage(results=results[start : start + limit], count=len(results), page=page, limit=limit, sort=sort)


def search_by_text(
    *,
    tenant: Tenant,
    text: str | Sequence[str],
    negatives: Sequence[str] = (),
    not_weight: float | None = None,
    limit: int,
    page: int = 1,
    sort: str = "score",
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
) -> SearchPage:
    """One or several descriptions (`text`), minus what the picture must not show (`negatives`)."""
    texts, nots = _embed_texts(_as_texts(text), negatives)
    vector = combine_query(texts=texts, negatives=nots, not_weight=not_weight)
    return _ranked(tenant, vector, limit=limit, page=page, sort=sort, filters=filters, min_score=min_score)


def embed_query_picture(*, file: IO[bytes], byte_size: int) -> QueryPicture:
    """The query picture, validated like an upload (ValidationError if refused) and never stored."""
    embedder = get_embedder("image")
    validated = validate_image(file, byte_size=byte_size, keep_side=embedder.image_size, keep_edge=QUERY_THUMBNAIL_SIZE)
    [vector] = embedder.embed_images([validated.upright_rgb])
    return QueryPicture(vector=vector, thumbnail=make_thumbnail(validated.upright_rgb, size=QUERY_THUMBNAIL_SIZE))


def search_by_picture(
    *,
    tenant: Tenant,
    picture: Vector,
    texts: Sequence[str] = (),
    negatives: Sequence[str] = (),
    image_weight: float | None = None,
    not_weight: float | None = None,
    limit: int,
    page: int = 1,
    sort: str = "score",
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
    exclude: str | None = None,
) -> SearchPage:
    """A picture's vector (a query picture's, or a stored image's for more like this), with words."""
    qs, nots = _embed_texts(texts, negatives)
    vector = combine_query(image=picture, texts=qs, negatives=nots, image_weight=image_weight, not_weight=not_weight)
    return _ranked(
        tenant, vector, limit=limit, page=page, sort=sort, filters=filters, min_score=min_score, exclude=exclude
    )


def search_by_image(
    *,
    tenant: Tenant,
    file: IO[bytes],
    byte_size: int,
    texts: Sequence[str] = (),
    negatives: Sequence[str] = (),
    image_weight: float | None = None,
    not_weight: float | None = None,
    limit: int,
    page: int = 1,
    sort: str = "score",
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
) -> SearchPage:
    """The query picture is validated like an upload (ValidationError if refused) and never stored."""
    picture = embed_query_picture(file=file, byte_size=byte_size)
    return search_by_picture(
        tenant=tenant, picture=picture.vector, texts=texts, negatives=negatives, image_weight=image_weight,
        not_weight=not_weight, limit=limit, page=page, sort=sort, filters=filters, min_score=min_score,
    )  # fmt: skip


def search_similar(
    *,
    tenant: Tenant,
    asset: ImageAsset,
    texts: Sequence[str] = (),
    negatives: Sequence[str] = (),
    image_weight: float | None = None,
    not_weight: float | None = None,
    limit: int,
    page: int = 1,
    sort: str = "score",
    filters: MetadataFilters = NO_FILTERS,
    min_score: float | None = None,
) -> SearchPage:
    if asset.tenant_id != tenant.pk:
        # Callers pass the tenant's own image (asset_for_tenant); anything else is their bug, refused
        # before another tenant's vector, or its name in an error message, could reach an answer.
        raise ValueError("search_similar takes an image of the tenant it searches.")
    vectors = index.fetch_vectors(tenant=tenant, ids=[str(asset.id)])
    if str(asset.id) not in vectors:
        raise SimilarUnavailable(
            f"{asset.original_filename} is {asset.get_status_display().lower()}; it has no vector yet."
        )
    return search_by_picture(
        tenant=tenant, picture=vectors[str(asset.id)], texts=texts, negatives=negatives, image_weight=image_weight,
        not_weight=not_weight, limit=limit, page=page, sort=sort, filters=filters, min_score=min_score,
        exclude=str(asset.id),
    )  # fmt: skip


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
