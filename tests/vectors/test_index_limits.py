"""The index door speaks to one Chroma server, to a server behind TLS and an auth header, and to
distributed Chroma / Chroma Cloud (tenant, database) through the same code, and keeps every call
inside Chroma Cloud's limits: 300 records a write, 300 results a read, 8 `where` conditions."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.api.models.Collection import Collection

from tests.conftest import api
from vectors import index
from vectors.layout import MAX_WHERE_PREDICATES


@dataclass
class FakeTenant:
    vector_key: str


@pytest.fixture(autouse=True)
def _own_vector_space(settings):
    settings.CLIP_PRETRAINED = "random"
    settings.CLIP_RANDOM_SEED = 4
    index.reset_connection()
    yield
    index.reset_connection()


@pytest.fixture
def calls(monkeypatch):
    """What the door asks of Chroma, recorded on the way through to the real collection."""
    seen: dict[str, list[int]] = {"upsert": [], "get": [], "query": []}
    real = {name: getattr(Collection, name) for name in seen}

    def upsert(self, **kwargs):
        seen["upsert"].append(len(kwargs["ids"]))
        return real["upsert"](self, **kwargs)

    def get(self, **kwargs):
        seen["get"].append(len(kwargs.get("ids") or []) or kwargs.get("limit") or 10**9)
        return real["get"](self, **kwargs)

    def query(self, **kwargs):
        seen["query"].append(kwargs["n_results"])
        return real["query"](self, **kwargs)

    for name, function in {"upsert": upsert, "get": get, "query": query}.items():
        monkeypatch.setattr(Collection, name, function)
    return seen


def unit_vectors(count: int, dimensions: int = 8) -> np.ndarray:
    vectors = np.random.default_rng(0).normal(size=(count, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_batch_of_1000_is_written_in_300s_and_read_back_in_pages_of_300(calls):
    tenant = FakeTenant(str(uuid.uuid4()))
    ids = [f"id-{i}" for i in range(1000)]
    index.upsert_vectors(tenant=tenant, ids=ids, embeddings=unit_vectors(1000), metadatas=[{"category": "x"}] * 1000)
    assert calls["upsert"] == [300, 300, 300, 100]
    assert index.vector_ids(tenant=tenant) == set(ids)
    assert len(index.fetch_vectors(tenant=tenant, ids=ids)) == 1000
    assert calls["get"] and max(calls["get"]) <= index.MAX_RESULTS
    hits = index.query_vectors(tenant=tenant, embedding=unit_vectors(1)[0], limit=5000)
    assert calls["query"] == [index.MAX_RESULTS] and len(hits) == index.MAX_RESULTS


def test_a_filter_of_too_many_conditions_is_refused_by_the_door():
    tenant = FakeTenant(str(uuid.uuid4()))
    where = {"$and": [{f"tag:{i}": {"$eq": True}} for i in range(MAX_WHERE_PREDICATES)]}
    with pytest.raises(index.FilterTooComplex):
        index.query_vectors(tenant=tenant, embedding=unit_vectors(1)[0], limit=5, where=where)


def test_a_200_tag_filter_is_a_400_naming_the_field(acme, bob):
    tags = ",".join(f"t{i}" for i in range(200))
    response = api(bob, acme).get("/api/v1/search/", {"q": "a dog", "tags": tags})
    assert response.status_code == 400
    assert list(response.json()) == ["tags"] and "Too many filters" in response.json()["tags"][0]
    listed = api(bob, acme).get("/api/v1/images/", {"tags": tags})
    assert listed.status_code == 400 and list(listed.json()) == ["tags"]


class TokenCheckingProxy(http.server.ThreadingHTTPServer):
    """An auth proxy in front of the Chroma server: requests without the token are refused."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream, self.token = upstream, token
        self.seen: list[str | None] = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: TokenCheckingProxy

    def _forward(self) -> None:
        self.server.seen.append(self.headers.get("x-chroma-token"))
        if self.headers.get("x-chroma-token") != self.server.token:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "Unauthorized", "message": "no token"}')
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
        answer = httpx.request(self.command, self.server.upstream + self.path, content=body, headers=headers)
        self.send_response(answer.status_code)
        for key in ("Content-Type",):
            if key in answer.headers:
                self.send_header(key, answer.headers[key])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def auth_proxy(chroma_server) -> Iterator[TokenCheckingProxy]:
    proxy = TokenCheckingProxy(chroma_server.url, token="s3cret-token")
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()


@pytest.mark.stack
def test_a_server_behind_an_auth_header_is_reached_with_chroma_api_key(settings, auth_proxy):
    tenant = FakeTenant(str(uuid.uuid4()))
    settings.CHROMA_URL = auth_proxy.url
    settings.CHROMA_API_KEY = "s3cret-token"
    index.upsert_vectors(tenant=tenant, ids=["a"], embeddings=unit_vectors(1), metadatas=[{"category": "x"}])
    assert [hit.id for hit in index.query_vectors(tenant=tenant, embedding=unit_vectors(1)[0], limit=1)] == ["a"]
    assert set(auth_proxy.seen) == {"s3cret-token"}

    settings.CHROMA_API_KEY = ""
    index.reset_connection()
    with pytest.raises(Exception, match=r"(?i)unauthori"):
        index.vector_ids(tenant=tenant)


@pytest.mark.stack
def test_collections_live_in_the_configured_chroma_tenant_and_database(settings, chroma_server):
    host, port = chroma_server.url.removeprefix("http://").split(":")
    admin = chromadb.AdminClient(
        chromadb.config.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI", chroma_server_host=host, chroma_server_http_port=int(port)
        )
    )
    name = f"org{uuid.uuid4().hex[:8]}"
    admin.create_tenant(name)
    admin.create_database("images", tenant=name)
    settings.CHROMA_URL, settings.CHROMA_TENANT, settings.CHROMA_DATABASE = chroma_server.url, name, "images"
    tenant = FakeTenant(str(uuid.uuid4()))
    index.upsert_vectors(tenant=tenant, ids=["a"], embeddings=unit_vectors(1), metadatas=[{"category": "x"}])
    theirs = chromadb.HttpClient(host=host, port=int(port), tenant=name, database="images")
    default = chromadb.HttpClient(host=host, port=int(port))
    assert index.collection_name(tenant) in {c.name for c in theirs.list_collections()}
    assert index.collection_name(tenant) not in {c.name for c in default.list_collections()}
