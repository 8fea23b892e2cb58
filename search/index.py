"""The one door to Chroma. Every read and write names a tenant, and the tenant condition is
always added here, as `$eq` inside `$and`, so nothing a caller passes can remove or widen it.

One collection per embedding model (see `search.embedding.model_key`): vectors of two models
never share a space. Chroma is a server (`CHROMA_URL`) whenever web and workers are separate
processes, and an embedded directory (`CHROMA_PATH`) in the single-process default.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from django.conf import settings

from search.embedding import current_model_key

logger = logging.getLogger(__name__)

TENANT_KEY = "tenant"
MetadataValue = str | int | float | bool
Where = dict[str, Any]


class IndexUnavailable(Exception):
    """Chroma cannot be reached right now; the operation is worth retrying later."""


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


_lock = threading.Lock()
_client: ClientAPI | None = None
_collections: dict[str, Collection] = {}


def _make_client() -> ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.CHROMA_URL:
        url = urlsplit(settings.CHROMA_URL)
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    settings.CHROMA_PATH.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.CHROMA_PATH), settings=chroma_settings)


def _collection() -> Collection:
    global _client
    name = current_model_key()
    with _lock:
        if name in _collections:
            return _collections[name]
        try:
            if _client is None:
                _client = _make_client()
            collection = _client.get_or_create_collection(
                name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"purpose": "image-search", "model": name},
                embedding_function=None,
            )
        except (httpx.TransportError, ValueError, ConnectionError) as exc:
            _client = None
            raise IndexUnavailable(f"Chroma is unreachable: {exc}") from exc
        _collections[name] = collection
        return collection


def reset_connection() -> None:
    """Forget the client and collections, e.g. after settings change or a fork."""
    global _client
    with _lock:
        _client = None
        _collections.clear()


def _call(operation: str, function: Any, **kwargs: Any) -> Any:
    try:
        return function(**kwargs)
    except (httpx.TransportError, ConnectionError) as exc:
        reset_connection()
        raise IndexUnavailable(f"Chroma {operation} failed: {exc}") from exc


def _tenant_key(tenant: TenantScoped) -> str:
    key = tenant.vector_key
    if not isinstance(key, str) or not key:
        raise ValueError("Every index operation needs a tenant with a vector key.")
    return key


def scoped_where(tenant: TenantScoped, where: Where | None = None) -> Where:
    condition: Where = {TENANT_KEY: {"$eq": _tenant_key(tenant)}}
    if not where:
        return condition
    return {"$and": [condition, where]}


def upsert_vectors(
    *,
    tenant: TenantScoped,
    ids: Sequence[str],
    embeddings: Sequence[Sequence[float]],
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
    _call(
        "upsert",
        _collection().upsert,
        ids=list(ids),
        embeddings=[list(vector) for vector in embeddings],
        metadatas=tagged,
    )


def delete_vectors(*, tenant: TenantScoped, ids: Sequence[str]) -> None:
    if ids:
        _call("delete", _collection().delete, ids=list(ids), where=scoped_where(tenant))


def delete_tenant_vectors(*, tenant: TenantScoped) -> None:
    _call("delete", _collection().delete, where=scoped_where(tenant))


def fetch_vectors(*, tenant: TenantScoped, ids: Sequence[str]) -> dict[str, list[float]]:
    if not ids:
        return {}
    result = _call("get", _collection().get, ids=list(ids), where=scoped_where(tenant), include=["embeddings"])
    embeddings = result["embeddings"] if result["embeddings"] is not None else []
    return {id_: [float(x) for x in vector] for id_, vector in zip(result["ids"], embeddings, strict=True)}


def fetch_metadata(*, tenant: TenantScoped, ids: Sequence[str]) -> dict[str, Mapping[str, MetadataValue]]:
    if not ids:
        return {}
    result = _call("get", _collection().get, ids=list(ids), where=scoped_where(tenant), include=["metadatas"])
    return dict(zip(result["ids"], result["metadatas"] or [], strict=True))


def count_vectors(*, tenant: TenantScoped) -> int:
    result = _call("get", _collection().get, where=scoped_where(tenant), include=[])
    return len(result["ids"])


def query_vectors(
    *, tenant: TenantScoped, embedding: Sequence[float], limit: int, where: Where | None = None
) -> list[Hit]:
    result = _call(
        "query",
        _collection().query,
        query_embeddings=[list(embedding)],
        n_results=limit,
        where=scoped_where(tenant, where),
        include=["distances", "metadatas"],
    )
    key = _tenant_key(tenant)
    hits = []
    for id_, distance, metadata in zip(result["ids"][0], result["distances"][0], result["metadatas"][0], strict=True):
        if metadata.get(TENANT_KEY) != key:  # a second guard; the where clause already excludes these
            logger.error("Chroma returned vector %s outside tenant %s; dropped", id_, key)
            continue
        hits.append(Hit(id=id_, distance=float(distance), metadata=metadata))
    return hits
