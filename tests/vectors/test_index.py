from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pytest
from chromadb.errors import InternalError

from vectors import index


@dataclass
class FakeTenant:
    """Only the key matters to the index; real tenants are tested through uploads."""

    vector_key: str


@pytest.fixture(autouse=True)
def _own_vector_space(settings):
    """These tests write 3-dimensional vectors: keep them out of the test model's collection."""
    settings.CLIP_PRETRAINED = "random"
    settings.CLIP_RANDOM_SEED = 3


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.stack)])
def backend(request, settings):
    if request.param == "server":
        settings.CHROMA_URL = request.getfixturevalue("chroma_server").url
    index.reset_connection()
    yield request.param
    index.reset_connection()


def tenants() -> tuple[FakeTenant, FakeTenant]:
    return FakeTenant(str(uuid.uuid4())), FakeTenant(str(uuid.uuid4()))


def test_every_read_and_write_is_scoped_to_its_tenant(backend):
    red, blue = tenants()
    index.upsert_vectors(tenant=red, ids=["r1"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": "a"}])
    index.upsert_vectors(tenant=blue, ids=["b1"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": "a"}])
    assert [hit.id for hit in index.query_vectors(tenant=red, embedding=[1.0, 0.0, 0.0], limit=10)] == ["r1"]
    assert index.fetch_vectors(tenant=red, ids=["b1"]) == {}
    assert index.count_vectors(tenant=blue) == 1
    index.delete_vectors(tenant=red, ids=["b1"])
    assert index.count_vectors(tenant=blue) == 1


def test_user_filters_only_narrow_within_the_tenant(backend):
    red, blue = tenants()
    index.upsert_vectors(
        tenant=red,
        ids=["r1", "r2"],
        embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        metadatas=[{"category": "a"}, {"category": "b"}],
    )
    index.upsert_vectors(tenant=blue, ids=["b1"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": "a"}])
    hostile = {"$or": [{"tenant": blue.vector_key}, {"tenant": {"$ne": red.vector_key}}, {"category": "a"}]}
    hits = index.query_vectors(tenant=red, embedding=[1.0, 0.0, 0.0], limit=10, where=hostile)
    assert [hit.id for hit in hits] == ["r1"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_upserting_twice_keeps_one_vector(backend):
    red, _ = tenants()
    for _ in range(2):
        index.upsert_vectors(tenant=red, ids=["x"], embeddings=[[0.0, 0.0, 1.0]], metadatas=[{"category": ""}])
    assert index.count_vectors(tenant=red) == 1


@pytest.mark.parametrize("key", ["", None])
def test_an_operation_without_a_tenant_is_refused(key):
    with pytest.raises(ValueError, match="tenant"):
        index.query_vectors(tenant=FakeTenant(key), embedding=[1.0, 0.0, 0.0], limit=1)  # type: ignore[arg-type]


def test_callers_cannot_set_the_tenant_key():
    red, blue = tenants()
    with pytest.raises(ValueError, match="tenant"):
        index.upsert_vectors(
            tenant=red, ids=["x"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"tenant": blue.vector_key}]
        )


def test_tenancy_is_expressed_with_eq_inside_and():
    red, _ = tenants()
    assert index.scoped_where(red) == {"tenant": {"$eq": red.vector_key}}
    assert index.scoped_where(red, {"category": "a"}) == {
        "$and": [{"tenant": {"$eq": red.vector_key}}, {"category": "a"}]
    }


def test_an_unreachable_server_is_reported_as_retryable(settings):
    settings.CHROMA_URL = "http://127.0.0.1:9"
    index.reset_connection()
    try:
        with pytest.raises(index.IndexUnavailable):
            index.count_vectors(tenant=tenants()[0])
    finally:
        index.reset_connection()


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_a_query_that_chroma_fails_internally_is_tried_again_then_reported_as_retryable(
    backend, failing_queries, failures
):
    red, _ = tenants()
    index.upsert_vectors(tenant=red, ids=["r1"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": "a"}])
    flaky = failing_queries(red, failures)
    if failures <= len(index.RACE_RETRY_DELAYS):
        assert [hit.id for hit in index.query_vectors(tenant=red, embedding=[1.0, 0.0, 0.0], limit=5)] == ["r1"]
    else:
        with pytest.raises(index.IndexUnavailable, match="Nothing found on disk"):
            index.query_vectors(tenant=red, embedding=[1.0, 0.0, 0.0], limit=5)
    assert flaky.failures == 0


def test_any_other_internal_error_from_chroma_is_not_retried_nor_called_retryable(backend, failing_queries):
    red, _ = tenants()
    index.upsert_vectors(tenant=red, ids=["r1"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": "a"}])
    flaky = failing_queries(red, 2, message="Error executing plan: something else broke")
    with pytest.raises(InternalError, match="something else"):
        index.query_vectors(tenant=red, embedding=[1.0, 0.0, 0.0], limit=5)
    assert flaky.failures == 1


def test_each_tenant_has_its_own_collection_per_model(settings):
    red, blue = tenants()
    assert index.collection_name(red) != index.collection_name(blue)
    before = index.collection_name(red)
    settings.CLIP_RANDOM_SEED = 4
    assert index.collection_name(red) != before


def test_deleting_a_tenants_vectors_leaves_the_others(backend):
    red, blue = tenants()
    for tenant in (red, blue):
        index.upsert_vectors(tenant=tenant, ids=["x"], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"category": ""}])
    index.delete_tenant_vectors(tenant=red)
    assert index.count_vectors(tenant=red) == 0
    assert index.count_vectors(tenant=blue) == 1
    index.delete_tenant_vectors(tenant=red)  # again: nothing left to delete, no error


def test_a_collection_made_by_an_older_version_is_brought_in_line_when_opened(backend):
    """Collections made before the wider search (ef_search 512), small and grown past GROWN_AT: the
    door's first open gives each the search width and the persistence its size calls for."""
    small, grown = tenants()
    for tenant, size in ((small, 3), (grown, index.GROWN_AT)):
        old = index._connected().create_collection(
            index.collection_name(tenant),
            configuration={"hnsw": {"space": "cosine", "ef_search": 512, "sync_threshold": 1000, "batch_size": 100}},
            metadata={index.TENANT_KEY: index._tenant_key(tenant)},
            embedding_function=None,
        )
        vectors = np.random.default_rng(size).normal(size=(size, 3)).astype(np.float32)
        for start in range(0, size, index.MAX_RECORDS_PER_WRITE):
            end = min(size, start + index.MAX_RECORDS_PER_WRITE)
            old.add(
                ids=[str(i) for i in range(start, end)],
                embeddings=vectors[start:end],
                metadatas=[{index.TENANT_KEY: index._tenant_key(tenant)}] * (end - start),
            )
    index.reset_connection()
    for tenant, wanted in ((small, index.HNSW_SMALL), (grown, index.HNSW_GROWN)):
        assert index.count_vectors(tenant=tenant) == (3 if tenant is small else index.GROWN_AT)
        hnsw = index._connected().get_collection(index.collection_name(tenant)).configuration["hnsw"]
        assert (hnsw["sync_threshold"], hnsw["ef_search"]) == (wanted["sync_threshold"], 2048)
