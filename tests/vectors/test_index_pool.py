"""Many tenants on one Chroma server: the server keeps a bounded pool of open HNSW indexes
(config/chroma.yaml) and every tenant's collection reaches the disk at once, so a tenant whose index
was evicted from the pool is read back, never "Nothing found on disk"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from tests.support.processes import ChromaServer
from tests.testenv import OUTPUT, ROOT
from vectors import index

pytestmark = pytest.mark.stack


@dataclass
class FakeTenant:
    vector_key: str


@pytest.fixture
def small_pool_server(tmp_path, settings) -> Iterator[ChromaServer]:
    """The project's server configuration with a pool of 4 indexes, so that eviction happens."""
    shipped = yaml.safe_load((ROOT / "config" / "chroma.yaml").read_text())
    assert shipped["segment_manager"]["hnsw_index_pool_cache_config"]["lru"]["capacity"] >= 100
    shipped["segment_manager"]["hnsw_index_pool_cache_config"]["lru"]["capacity"] = 4
    (tmp_path / "chroma.yaml").write_text(yaml.safe_dump(shipped))
    server = ChromaServer(tmp_path / "data", log=OUTPUT / "chroma-pool.log", config=tmp_path / "chroma.yaml")
    server.start()
    settings.CLIP_PRETRAINED, settings.CLIP_RANDOM_SEED, settings.CHROMA_URL = "random", 5, server.url
    index.reset_connection()
    yield server
    index.reset_connection()
    server.stop()


def test_tenants_evicted_from_the_pool_are_read_back_with_every_vector(small_pool_server):
    rng = np.random.default_rng(1)
    tenants = {}
    for size in [1, 2, 3, 1, 5, 2, 8, 1, 3, 2, 1, 4]:  # small tenants, three times the pool
        tenant = FakeTenant(str(uuid.uuid4()))
        vectors = rng.normal(size=(size, 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"{tenant.vector_key}-{i}" for i in range(size)]
        index.upsert_vectors(tenant=tenant, ids=ids, embeddings=vectors, metadatas=[{"category": "c"}] * size)
        tenants[tenant.vector_key] = (tenant, ids, vectors)
    for _ in range(2):  # twice round: every index has been evicted at least once
        for tenant, ids, vectors in tenants.values():
            for id_, vector in zip(ids, vectors, strict=True):
                [hit] = index.query_vectors(tenant=tenant, embedding=vector, limit=1)
                assert hit.id == id_
    small_pool_server.stop()
    small_pool_server.start()  # and after a restart
    index.reset_connection()
    for tenant, ids, vectors in tenants.values():
        assert {h.id for h in index.query_vectors(tenant=tenant, embedding=vectors[0], limit=10)} == set(ids)
