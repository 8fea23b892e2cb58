"""The one door to Chroma. Every read and write names a tenant and goes to that tenant's own
collection. Every filtered read carries the tenant condition, added here as `$eq` inside `$and`, so
nothing a caller passes can remove or widen it. Two reads carry no condition, by design: an
unfiltered nearest-neighbour query (a `where` costs a metadata scan and could only match everything
in the tenant's own collection; every hit's tenant key is checked instead) and
`remove_untagged_vectors`, whose job is to find records without the right key.

One collection per tenant and vector space (`<space>-<tenant key>`): the space is the embedding
model's key, passed in by the caller or, when the caller names none, the active space that
`configure` was given at startup (`vectors.apps`). Vectors of two models never share a collection,
and a query searches only its tenant's vectors. One shared collection filtered by tenant lost recall for small tenants
(Chroma's filtered HNSW walk finds few allowed neighbours: recall@10 fell to 0.7) and paid for the
metadata filter on every query. Chroma is a server (`CHROMA_URL`) whenever web and workers are
separate processes, and an embedded directory (`CHROMA_PATH`) in the single-process default.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import chromadb
import httpx
import numpy as np
import numpy.typing as npt
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError, NotFoundError
from django.conf import settings

from vectors.layout import MAX_WHERE_PREDICATES, TENANT_KEY, MetadataValue, Where, where_predicates

logger = logging.getLogger(__name__)

# Vectors travel as float32 arrays: one per row of a Vectors matrix.
Vector = npt.NDArray[np.float32]
Vectors = npt.NDArray[np.float32]


class IndexUnavailable(Exception):
    """Chroma cannot be reached right now, or keeps failing in a way known to pass; the operation
    is worth retrying later."""


class FilterTooComplex(ValueError):
    """A `where` with more conditions than Chroma Cloud takes (MAX_WHERE_PREDICATES)."""


# Chroma Cloud's limits, kept by every call here so that moving to it (or to distributed Chroma)
# needs no code change: records per write, results per read.
MAX_RECORDS_PER_WRITE = 300
MAX_RESULTS = 300


class IndexLocked(IndexUnavailable):
    """The embedded Chroma directory is held by another process (the running service)."""


class TenantScoped(Protocol):
    @property
    def vector_key(self) -> str: ...


@dataclass(frozen=True)
class Hit:
    id: str
    distance: float
    metadata: Mapping[str, MetadataValue]

    @property
    def score(self) -> float:
        """Cosine similarity, 1 for the same direction."""
        return 1.0 - self.distance


# Graph settings for each tenant's collection: more neighbours and a much wider search than Chroma's
# defaults (16, 100). Measured by bench/query on 20,000 vectors: recall@10 0.93 at ef_search 128,
# 0.99 at 512. On bench/tenants' harder queries (a photo's vector far off its themes, where every
# image is about as near as the next) at 20,000 vectors, 10 of 300 queries stayed under 0.98 at 512,
# 3-4 at 1,024, 1 at 1,536 and none at 2,048, for 5 ms more per query (p50 5 -> 10 ms). Below 2,048
# images the walk sees every image: exact. The server applies a changed ef_search when it next loads
# the index (a restart, or the pool evicting it), not to an index it holds.
EF_SEARCH = 2048
# When the index reaches the disk. The server keeps a bounded pool of open indexes (config/chroma.yaml),
# and an index evicted before it ever reached the disk cannot be read back ("Nothing found on disk"):
# a small collection writes every change at once (sync_threshold 1). Writing a large index at every
# batch costs ingest speed (bench/tenants: 0.37x at 300 vectors), so a collection that has grown past
# GROWN_AT, and so is on disk, goes back to Chroma's own thresholds; what arrives after its last sync
# is read back from Chroma's log.
HNSW_SMALL = {"sync_threshold": 1, "batch_size": 1, "ef_search": EF_SEARCH}
HNSW_GROWN = {"sync_threshold": 1000, "batch_size": 100, "ef_search": EF_SEARCH}
GROWN_AT = 1000
HNSW_CONFIGURATION = {"space": "cosine", "max_neighbors": 32, "ef_construction": 200, **HNSW_SMALL}

_lock = threading.Lock()
_client: ClientAPI | None = None
_collections: dict[str, Collection] = {}
_grown: set[str] = set()  # collections past GROWN_AT, already at Chroma's own persistence


def _make_client() -> ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.CHROMA_URL:
        # A Chroma server (`chroma run`, behind TLS and an auth proxy if need be), distributed Chroma or
        # Chroma Cloud: one client, told apart by the URL, the headers, the tenant and the database.
        url = urlsplit(settings.CHROMA_URL)
        headers = dict(settings.CHROMA_HEADERS)
        if settings.CHROMA_API_KEY:
            headers["x-chroma-token"] = settings.CHROMA_API_KEY
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            headers=headers or None,
            tenant=settings.CHROMA_TENANT,
            database=settings.CHROMA_DATABASE,
            settings=chroma_settings,
        )
    settings.CHROMA_PATH.mkdir(parents=True, exist_ok=True)
    _hold_embedded_directory(settings.CHROMA_PATH)
    return chromadb.PersistentClient(path=str(settings.CHROMA_PATH), settings=chroma_settings)


# The embedded directory serves one process: a second PersistentClient on it (a CLI command beside the
# running service) desynchronises both, and the server then fails queries ("Error finding id"). The
# first process to open it holds an exclusive lock until it exits; any other is refused.
_held: dict[Path, IO[str]] = {}


def _hold_embedded_directory(path: Path) -> None:
    path = path.resolve()
    if path in _held:
        return
    handle = (path / "imagesearch.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise IndexLocked(
            f"The embedded Chroma directory {path} is in use by {holder} (the service started by `make run`?), "
            "and it serves one process only. Let the running service do the work (uploads, or `import_images`, "
            "which hands new images to it), or stop it first; to share the index between processes run a "
            "Chroma server and set CHROMA_URL."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()
    _held[path] = handle


_active_space: Callable[[], str] | None = None
_write_spaces: Callable[[], Sequence[str]] | None = None


def configure(*, active_space: Callable[[], str], write_spaces: Callable[[], Sequence[str]] | None = None) -> None:
    """Names the vector space that reads and writes use when the caller names none, and the spaces
    that a metadata change or a deletion naming none reaches (the active one and one being built:
    they must agree once the second becomes active)."""
    global _active_space, _write_spaces
    _active_space, _write_spaces = active_space, write_spaces


def _spaces_written(space: str | None) -> list[str]:
    if space:
        return [space]
    return list(_write_spaces()) if _write_spaces is not None else [_space(None)]


def _space(space: str | None) -> str:
    if space:
        return space
    if _active_space is None:
        raise RuntimeError("vectors.index.configure(active_space=...) was never called; is 'vectors' installed?")
    return _active_space()


def collection_name(tenant: TenantScoped, space: str | None = None) -> str:
    return f"{_space(space)}-{_tenant_key(tenant)}"


def _connected() -> ClientAPI:
    global _client
    if _client is None:
        try:
            _client = _make_client()
        except (httpx.TransportError, ValueError, ConnectionError) as exc:
            raise IndexUnavailable(f"Chroma is unreachable: {exc}") from exc
    return _client


def check_available() -> None:
    """Opens the client now: IndexUnavailable (IndexLocked for an embedded directory another process
    holds) before a caller spends time on work whose vectors it could not write."""
    _connected()


def _collection(tenant: TenantScoped, space: str | None = None) -> Collection:
    global _client
    space = _space(space)
    name = collection_name(tenant, space)
    with _lock:
        if name in _collections:
            return _collections[name]
        try:
            collection = _connected().get_or_create_collection(
                name,
                configuration={"hnsw": HNSW_CONFIGURATION},  # type: ignore[typeddict-item,arg-type]
                metadata={"purpose": "image-search", "model": space, TENANT_KEY: _tenant_key(tenant)},
                embedding_function=None,
            )
        except (httpx.TransportError, ValueError, ConnectionError) as exc:
            _client = None
            raise IndexUnavailable(f"Chroma is unreachable: {exc}") from exc
        if (collection.metadata or {}).get(TENANT_KEY) != _tenant_key(tenant):
            raise RuntimeError(f"Collection {name} does not belong to tenant {_tenant_key(tenant)}.")
        _settle_persistence(collection, count=_call("count", collection.count))
        _collections[name] = collection
        return collection


def _settle_persistence(collection: Collection, *, count: int) -> bool:
    """Small collections reach the disk at every change, grown ones at Chroma's own pace (HNSW_SMALL,
    HNSW_GROWN); a collection made by an older version (another ef_search too) is brought in line
    when opened. Returns whether the collection has grown."""
    if collection.name in _grown:
        return True
    grown = count >= GROWN_AT
    wanted = HNSW_GROWN if grown else HNSW_SMALL
    hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw") or {}
    # Chroma 1.5 does not report batch_size back: what it leaves out is taken as set (otherwise
    # every open of a small collection would write its configuration again).
    if any(hnsw.get(key, value) != value for key, value in wanted.items()):
        _call("modify", collection.modify, configuration={"hnsw": wanted})
    if grown:
        _grown.add(collection.name)
    return grown


def reset_connection() -> None:
    """Forget the client and collections, e.g. after settings change or a fork."""
    global _client
    with _lock:
        _client = None
        _collections.clear()


# Pauses before the second and third try of an operation that met Chroma's known race.
RACE_RETRY_DELAYS = (0.05, 0.25)
# Chroma's server (1.5) now and then fails a query that races its own writer persisting a
# collection's first HNSW files: 2 of 7,500 queries under concurrent upserts, and the next try succeeds.
RACE_MESSAGE = "Error creating hnsw segment reader"


def _call(operation: str, function: Any, **kwargs: Any) -> Any:
    """Runs one Chroma operation. Unreachable: IndexUnavailable at once. Chroma's known race
    (RACE_MESSAGE) is tried twice more, then reported as IndexUnavailable too (retry later); every
    operation here is idempotent, so a retry cannot double anything. Any other internal error
    propagates as it is: nothing says that trying again would help."""
    delays = iter(RACE_RETRY_DELAYS)
    while True:
        try:
            return _call_once(operation, function, kwargs)
        except InternalError as exc:
            if RACE_MESSAGE not in str(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                logger.error("Chroma %s met its segment reader race %d times", operation, len(RACE_RETRY_DELAYS) + 1)
                raise IndexUnavailable(f"Chroma {operation} failed: {exc}") from exc
            logger.warning("Chroma %s met its segment reader race (%s); trying again", operation, exc)
            time.sleep(delay)


def _call_once(operation: str, function: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return function(**kwargs)
    except (httpx.TransportError, ConnectionError) as exc:
        reset_connection()
        raise IndexUnavailable(f"Chroma {operation} failed: {exc}") from exc
    except NotFoundError as exc:
        if operation == "delete_collection":
            raise
        # A collection this process holds a handle to was dropped by another (`reindex --cancel`,
        # `--drop-old`, a tenant's deletion) and perhaps made again under a new id: the handles are
        # forgotten, and the next try opens the collection afresh.
        reset_connection()
        raise IndexUnavailable(f"Chroma {operation} failed: {exc}; try again") from exc


def _tenant_key(tenant: TenantScoped) -> str:
    key = tenant.vector_key
    if not isinstance(key, str) or not key:
        raise ValueError("Every index operation needs a tenant with a vector key.")
    return key


def scoped_where(tenant: TenantScoped, where: Where | None = None) -> Where:
    condition: Where = {TENANT_KEY: {"$eq": _tenant_key(tenant)}}
    if not where:
        return condition
    if where_predicates(where) + 1 > MAX_WHERE_PREDICATES:
        raise FilterTooComplex(
            f"A filter of at most {MAX_WHERE_PREDICATES - 1} conditions, not {where_predicates(where)}."
        )
    return {"$and": [condition, where]}


def _chunks(items: Sequence[Any], size: int = MAX_RECORDS_PER_WRITE) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _get(
    collection: Collection, *, where: Where | None, include: list[str], ids: Sequence[str] = ()
) -> dict[str, list[Any]]:
    """`collection.get` in reads of at most MAX_RESULTS records (by ids, or page by page), merged."""
    merged: dict[str, list[Any]] = {"ids": [], "embeddings": [], "metadatas": []}
    options: dict[str, Any] = {"include": include}
    if where:
        options["where"] = where
    if ids:
        pages = [
            _call("get", collection.get, ids=list(chunk), **options) for chunk in _chunks(_unique(ids), MAX_RESULTS)
        ]
    else:
        pages, offset = [], 0
        while True:
            page = _call("get", collection.get, limit=MAX_RESULTS, offset=offset, **options)
            pages.append(page)
            offset += MAX_RESULTS
            if len(page["ids"]) < MAX_RESULTS:
                break
    for page in pages:
        merged["ids"].extend(page["ids"])
        for key in ("embeddings", "metadatas"):
            if page.get(key) is not None:
                merged[key].extend(page[key])
    return merged


def upsert_vectors(
    *,
    tenant: TenantScoped,
    space: str | None = None,
    ids: Sequence[str],
    embeddings: Vectors | Sequence[Sequence[float]],
    metadatas: Sequence[Mapping[str, MetadataValue]],
) -> None:
    if not ids:
        return
    if not len(ids) == len(embeddings) == len(metadatas):
        raise ValueError("ids, embeddings and metadatas must have the same length.")
    key = _tenant_key(tenant)
    tagged = []
    for metadata in metadatas:
        if TENANT_KEY in metadata:
            raise ValueError(f"Metadata may not set {TENANT_KEY!r}; the index sets it.")
        tagged.append({**metadata, TENANT_KEY: key})
    collection, vectors = _collection(tenant, space), np.asarray(embeddings, dtype=np.float32)
    for start in range(0, len(ids), MAX_RECORDS_PER_WRITE):
        end = start + MAX_RECORDS_PER_WRITE
        _call(
            "upsert",
            collection.upsert,
            ids=list(ids[start:end]),
            embeddings=vectors[start:end],
            metadatas=tagged[start:end],
        )


def update_metadata(
    *,
    tenant: TenantScoped,
    space: str | None = None,
    ids: Sequence[str],
    metadatas: Sequence[Mapping[str, MetadataValue | None]],
) -> None:
    """Changes stored records' metadata, not their vectors. Chroma merges the given keys into the
    record's; a key given as None is removed. Ids the tenant's collection does not hold are ignored.
    With no `space`, every live space's records change (see `configure`)."""
    if not ids:
        return
    if len(ids) != len(metadatas):
        raise ValueError("ids and metadatas must have the same length.")
    for metadata in metadatas:
        if TENANT_KEY in metadata:
            raise ValueError(f"Metadata may not set {TENANT_KEY!r}; the index sets it.")
    for written in _spaces_written(space):
        collection = _collection(tenant, written)
        held = set(_get(collection, ids=ids, where=scoped_where(tenant), include=[])["ids"])
        rows = [(id_, dict(metadata)) for id_, metadata in zip(ids, metadatas, strict=True) if id_ in held]
        for chunk in _chunks(rows):
            _call("update", collection.update, ids=[id_ for id_, _ in chunk], metadatas=[m for _, m in chunk])


def _unique(ids: Sequence[str]) -> list[str]:
    """Chroma refuses a get or delete that names an id twice; the caller means it once."""
    return list(dict.fromkeys(ids))


def delete_vectors(*, tenant: TenantScoped, space: str | None = None, ids: Sequence[str]) -> None:
    """Deletes the tenant's records; with no `space`, from every live space (see `configure`)."""
    if ids:
        for written in _spaces_written(space):
            collection = _collection(tenant, written)
            for chunk in _chunks(_unique(ids)):
                _call("delete", collection.delete, ids=list(chunk), where=scoped_where(tenant))


def delete_tenant_vectors(*, tenant: TenantScoped, space: str | None = None) -> None:
    """Drops the tenant's collection; with no `space`, in every live space (see `configure`)."""
    for written in _spaces_written(space):
        name = collection_name(tenant, written)
        with _lock:
            _collections.pop(name, None)
        with contextlib.suppress(NotFoundError):  # nothing was ever stored
            _call("delete_collection", lambda name=name: _connected().delete_collection(name))


def fetch_vectors(*, tenant: TenantScoped, space: str | None = None, ids: Sequence[str]) -> dict[str, Vector]:
    if not ids:
        return {}
    result = _get(_collection(tenant, space), ids=ids, where=scoped_where(tenant), include=["embeddings"])
    return {
        id_: np.asarray(vector, dtype=np.float32)
        for id_, vector in zip(result["ids"], result["embeddings"], strict=True)
    }


def fetch_metadata(
    *, tenant: TenantScoped, space: str | None = None, ids: Sequence[str]
) -> dict[str, Mapping[str, MetadataValue]]:
    if not ids:
        return {}
    result = _get(_collection(tenant, space), ids=ids, where=scoped_where(tenant), include=["metadatas"])
    return dict(zip(result["ids"], result["metadatas"], strict=True))


def count_vectors(*, tenant: TenantScoped, space: str | None = None) -> int:
    return len(vector_ids(tenant=tenant, space=space))


def query_vectors(
    *,
    tenant: TenantScoped,
    space: str | None = None,
    embedding: Vector | Sequence[float],
    limit: int,
    where: Where | None = None,
) -> list[Hit]:
    """The tenant's nearest vectors. With user filters the query carries
    `{"$and": [{"tenant": {"$eq": key}}, filters]}`. Without them it searches the tenant's own
    collection unfiltered: Chroma evaluates a `where` by scanning the metadata of every record it
    matches, 130 ms for a tenant of 20,000 images against 4 ms for the HNSW walk (bench/query),
    and here it could only match everything. The collection is the tenant's (checked on open),
    and every hit's `tenant` metadata is still checked below."""
    [hits] = query_vectors_many(
        tenant=tenant, space=space, embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1), limit=limit,
        where=where,
    )  # fmt: skip
    return hits


# Query vectors sent in one request by query_vectors_many: a batch of uploads asks once, not once per image.
MAX_QUERIES_PER_READ = 100


def query_vectors_many(
    *, tenant: TenantScoped, space: str | None = None, embeddings: Vectors, limit: int, where: Where | None = None
) -> list[list[Hit]]:
    """`query_vectors` for several vectors of one tenant at once: one request per
    MAX_QUERIES_PER_READ vectors; the hits of each, in order."""
    collection = _collection(tenant, space)
    options: dict[str, Any] = {"where": scoped_where(tenant, where)} if where else {}
    key = _tenant_key(tenant)
    vectors = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    found: list[list[Hit]] = []
    for start in range(0, len(vectors), MAX_QUERIES_PER_READ):
        result = _call(
            "query",
            collection.query,
            query_embeddings=vectors[start : start + MAX_QUERIES_PER_READ],
            n_results=min(limit, MAX_RESULTS),
            include=["distances", "metadatas"],
            **options,
        )
        for ids, distances, metadatas in zip(result["ids"], result["distances"], result["metadatas"], strict=True):
            hits = []
            for id_, distance, metadata in zip(ids, distances, metadatas, strict=True):
                if metadata.get(TENANT_KEY) != key:  # a second guard; the where clause already excludes these
                    logger.error("Chroma returned vector %s outside tenant %s; dropped", id_, key)
                    continue
                hits.append(Hit(id=id_, distance=float(distance), metadata=metadata))
            found.append(hits)
    return found


def vector_ids(*, tenant: TenantScoped, space: str | None = None) -> set[str]:
    """Ids of the tenant's vectors (tagged with its key) for the current model."""
    return set(_get(_collection(tenant, space), where=scoped_where(tenant), include=[])["ids"])


def remove_untagged_vectors(*, tenant: TenantScoped, space: str | None = None) -> int:
    """Deletes vectors in the tenant's collection whose `tenant` key is missing or another's.
    No query can return them (results are checked against the key), but they must not linger."""
    collection = _collection(tenant, space)
    key = _tenant_key(tenant)
    result = _get(collection, where=None, include=["metadatas"])
    strays = [
        id_ for id_, metadata in zip(result["ids"], result["metadatas"], strict=True)
        if (metadata or {}).get(TENANT_KEY) != key
    ]  # fmt: skip
    for chunk in _chunks(strays):
        _call("delete", collection.delete, ids=list(chunk))
    return len(strays)


def stored_tenant_keys(space: str | None = None) -> set[str]:
    """The tenant keys that have a collection in the space."""
    model = _space(space)
    collections: list[Collection] = []
    while True:
        page = _call("list_collections", _connected().list_collections, limit=MAX_RESULTS, offset=len(collections))
        collections.extend(page)
        if len(page) < MAX_RESULTS:
            break
    keys = set()
    for collection in collections:
        metadata = collection.metadata or {}
        if metadata.get("model") == model and isinstance(metadata.get(TENANT_KEY), str):
            keys.add(metadata[TENANT_KEY])
    return keys


@dataclass(frozen=True)
class _Key:
    vector_key: str


def drop_tenant_key(key: str, space: str | None = None) -> None:
    """Drops the collection of a tenant that exists no more."""
    delete_tenant_vectors(tenant=_Key(key), space=space)
