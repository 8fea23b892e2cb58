"""Property tests: whatever filters, ids and parameters a caller throws at search (random values,
attempts to name or override the tenant, Chroma operators such as `$or`/`$ne`/`$nin`, other tenants'
ids, repeated parameters, huge numbers, unicode junk), every result is the caller's own, nothing is a
server error, and another tenant's image is a 404 exactly like a missing one.

Umbra and Lumen hold the same pictures with overlapping metadata (tests/two_tenants.py), so a filter
that widened the search past the tenant would find the other tenant's copy at distance 0.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pytest
from chromadb.errors import ChromaError
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus
from search.services import search_by_image, search_by_text, search_similar
from tests.conftest import keyed_client
from tests.two_tenants import PICTURES, Seeded, leaked, picture_bytes, seed_two_tenants
from vectors import index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # hypothesis: 20 s on 2 cores

# The seeded tenants are read, never written, by every example.
PROPERTY = settings(
    max_examples=35,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SEARCH_FIELDS = {"q", "limit", "min_score", "category", "source", "tags", "uploaded_from", "uploaded_to"}
LIST_FIELDS = {"status", "category", "source", "tag", "uploaded_from", "uploaded_to", "page", "page_size"}
OPERATORS = ["$or", "$and", "$ne", "$nin", "$in", "$eq", "$gt", "$not", "$contains"]
TENANT_KEYS = ["tenant", "tenant_id", "tenant__slug", "tenant_slug", "tenant__vector_uuid", "where", "filter", "$or"]


@pytest.fixture
def world() -> tuple[Seeded, Seeded]:
    return seed_two_tenants()


def junk_text(max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(max_size=max_size)


def where_clauses(keys: list[str], values: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Chroma `where` clauses, valid or not, built from the given metadata keys and values."""
    scalar = st.sampled_from(values) | st.integers(-(2**40), 2**40) | st.booleans() | junk_text(20)
    leaf = st.builds(
        lambda key, op, value: {key: {op: value} if op else value},
        st.sampled_from(keys),
        st.sampled_from(["", *OPERATORS]),
        scalar | st.lists(scalar, max_size=3),
    )
    return st.recursive(
        leaf,
        lambda inner: st.builds(
            lambda op, items: {op: items}, st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3)
        ),
        max_leaves=6,
    )


def hostile_values(other: Seeded) -> st.SearchStrategy[str]:
    """Values naming the other tenant, or shaped like Chroma clauses."""
    where = where_clauses(["tenant", "category", "tag:dog"], [other.tenant.vector_key, other.tenant.slug, "pets"])
    return st.one_of(
        st.sampled_from(
            [other.tenant.slug, other.tenant.vector_key, str(other.tenant.pk), other.tenant.name, *other.image_ids]
        ),
        where.map(json.dumps),
        st.sampled_from(OPERATORS),
        junk_text(),
    )


def search_params(me: Seeded, other: Seeded, *, with_q: bool) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query pairs for a search: its real parameters with good, bad and hostile values, extra keys
    trying to name a tenant or pass a where clause, and any of them repeated."""
    metadata = ["pets", "people", "cookbook", "archive", "dog", "cat", "person", "", " PETS ", "dog, cat"]
    shared = st.sampled_from(metadata) | hostile_values(other) | junk_text()
    dates = st.dates().map(date.isoformat) | st.sampled_from(["0001-01-01", "9999-12-31", "2024-02-30", "today", ""])
    numbers = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(["", "1e3", "ten", "0", "-1", "200", "201"])
    scores = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(["nan", "-1", "1", "0.5"])
    values: dict[str, st.SearchStrategy[str]] = {
        "q": st.sampled_from(["a photo of a dog", "cat", "x" * 1001]) | junk_text(80),
        "limit": numbers,
        "min_score": scores,
        "category": shared,
        "source": shared | st.just(f"{other.tenant.slug}-cam"),
        "tags": shared | st.just(f"dog,{other.tenant.slug}-only"),
        "uploaded_from": dates,
        "uploaded_to": dates,
    }
    pair = st.one_of(
        *(st.tuples(st.just(key), strategy) for key, strategy in values.items()),
        st.tuples(st.sampled_from(TENANT_KEYS) | st.sampled_from(OPERATORS), hostile_values(other)),
    )
    head = st.lists(st.tuples(st.just("q"), values["q"]), max_size=1) if with_q else st.just([])
    return st.builds(lambda head, rest: [*head, *rest], head, st.lists(pair, max_size=8))


def sent(pairs: list[tuple[str, str]]) -> str:
    """What the caller sent, which an answer may echo without leaking anything."""
    return "\n".join(value for _, value in pairs)


def token_client(seeded: Seeded) -> APIClient:
    return keyed_client(seeded.key)


def assert_only_own(response: Any, me: Seeded, other: Seeded, *, allowed: str = "") -> list[str]:
    """200 with results all of the caller's tenant, or a 400 naming what was wrong."""
    assert response.status_code in {200, 400}, (response.status_code, response.content[:500])
    event(f"status {response.status_code}")
    body = response.json()
    if response.status_code == 400:
        assert isinstance(body, dict) and body
        assert all(isinstance(v, list) and v and all(isinstance(m, str) and m for m in v) for v in body.values())
        return []
    ids = [row["id"] for row in body["results"]]
    event("with results" if ids else "no results")
    assert set(ids) <= me.image_ids
    assert leaked(response.content.decode(), other.secrets, allowed=allowed) == []
    return ids


def callers(world: tuple[Seeded, Seeded]) -> st.SearchStrategy[tuple[Seeded, Seeded]]:
    umbra, lumen = world
    return st.sampled_from([(umbra, lumen), (lumen, umbra)])


# --- the service ---------------------------------------------------------------------------------


def service_filters(other: Seeded) -> st.SearchStrategy[MetadataFilters]:
    words = st.sampled_from(["pets", "people", "cookbook", "archive", f"{other.tenant.slug}-cam", ""]) | hostile_values(
        other
    )
    tags = st.lists(
        st.sampled_from(["dog", "cat", "person", f"{other.tenant.slug}-only", "tenant"]) | words, max_size=2
    )
    day = st.none() | st.dates()
    # At most 7 conditions with the labels, within the index's 8 with the tenant's (FilterTooComplex beyond).
    labels = st.lists(st.sampled_from(["dog", f"{other.tenant.slug}-only", "tenant"]) | words, max_size=1)
    return st.builds(MetadataFilters, words, words, tags.map(tuple), day, day, labels.map(tuple))


@settings(PROPERTY, max_examples=30)
@given(data=st.data())
def test_service_searches_return_only_the_callers_ready_images(world, data):
    me, other = data.draw(callers(world))
    filters = data.draw(service_filters(other))
    limit = data.draw(st.integers(-(2**63), 2**63))
    min_score = data.draw(st.none() | st.floats(allow_nan=True, allow_infinity=True))
    how = data.draw(st.sampled_from(["text", "image", "similar", "similar to the other tenant's"]))
    options: dict[str, Any] = {"tenant": me.tenant, "limit": limit, "filters": filters, "min_score": min_score}
    if how == "text":
        results = search_by_text(text=data.draw(junk_text(200)), **options)
    elif how == "image":
        content = picture_bytes(data.draw(st.sampled_from([p[0] for p in PICTURES])))
        results = search_by_image(file=SimpleUploadedFile("q", content), byte_size=len(content), **options)
    elif how == "similar":
        asset = data.draw(st.sampled_from(me.images))
        results = search_similar(asset=asset, **options)
        assert asset.id not in {r.asset.id for r in results}
    else:
        # Views pass only the caller's own images; handed another tenant's, the service refuses it
        # rather than search with the other tenant's vector or name its image in an error.
        with pytest.raises(ValueError, match="an image of the tenant it searches"):
            search_similar(asset=data.draw(st.sampled_from(other.images)), **options)
        return
    assert len(results) <= max(1, min(limit, django_settings.SEARCH_MAX_LIMIT))
    for result in results:
        assert result.asset.tenant_id == me.tenant.pk
        assert result.asset.status == AssetStatus.READY
        assert min_score is None or result.score >= min_score


# --- the index -----------------------------------------------------------------------------------


def _keys_in(where: Any) -> set[str]:
    if isinstance(where, dict):
        return set(where) | {k for value in where.values() for k in _keys_in(value)}
    if isinstance(where, list):
        return {k for item in where for k in _keys_in(item)}
    return set()


@PROPERTY
@given(filters=st.data())
def test_user_filters_never_name_the_tenant_key_and_always_go_down_under_the_tenant_condition(world, filters):
    me, other = filters.draw(callers(world))
    where = filters.draw(service_filters(other)).to_where()
    assert index.TENANT_KEY not in _keys_in(where)
    scoped = index.scoped_where(me.tenant, where)
    condition = {index.TENANT_KEY: {"$eq": me.tenant.vector_key}}
    assert scoped == ({"$and": [condition, where]} if where else condition)


def chroma_where(texts: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed Chroma clauses over the stored metadata, the tenant key included: equalities,
    `$ne`, `$in`/`$nin`, ranges, nested in `$and`/`$or`."""
    text_keys = st.sampled_from([index.TENANT_KEY, "category", "source"])
    text = st.sampled_from(texts)
    leaf = st.one_of(
        st.builds(lambda k, v: {k: v}, text_keys, text),
        st.builds(lambda k, op, v: {k: {op: v}}, text_keys, st.sampled_from(["$eq", "$ne"]), text),
        st.builds(
            lambda k, op, vs: {k: {op: vs}},
            text_keys,
            st.sampled_from(["$in", "$nin"]),
            st.lists(text, min_size=1, max_size=3, unique=True),
        ),
        st.builds(lambda op, v: {"tag:dog": {op: v}}, st.sampled_from(["$eq", "$ne"]), st.booleans()),
        st.builds(
            lambda op, v: {"uploaded_at": {op: v}},
            st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$ne"]),
            st.integers(0, 2**33),
        ),
    )
    return st.recursive(
        leaf,
        lambda inner: st.builds(
            lambda op, items: {op: items}, st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=2, max_size=3)
        ),
        max_leaves=5,
    )


@pytest.fixture
def strays(world):
    """Vectors planted straight into Umbra's collection that are not Umbra's: one tagged with Lumen's
    key and one with no tenant key, both at the position of Umbra's dog, matching every filter."""
    umbra, lumen = world
    dog = str(umbra.images[0].id)
    [vector] = index.fetch_vectors(tenant=umbra.tenant, ids=[dog]).values()
    metadata = dict(index.fetch_metadata(tenant=umbra.tenant, ids=[dog])[dog])
    collection = index._collection(umbra.tenant)
    untagged = {k: v for k, v in metadata.items() if k != index.TENANT_KEY}
    collection.upsert(
        ids=["stray-lumen", "stray-untagged"],
        embeddings=[vector, vector],
        metadatas=[{**untagged, index.TENANT_KEY: lumen.tenant.vector_key}, untagged],
    )
    # Without the index's tenant condition, such a clause does reach them.
    hostile = {index.TENANT_KEY: {"$ne": umbra.tenant.vector_key}}
    assert set(collection.get(where=hostile)["ids"]) == {"stray-lumen", "stray-untagged"}
    yield vector
    assert index.remove_untagged_vectors(tenant=umbra.tenant) == 2


@PROPERTY
@given(data=st.data())
def test_no_where_clause_reaches_past_the_tenant_condition(world, strays, data):
    """Any clause, even one written to select the other tenant's key or records without a key
    (`$ne`/`$nin` match those), goes to Chroma under the tenant condition: the planted strays never
    come back, neither from index.query_vectors nor from Chroma itself given index.scoped_where."""
    umbra, lumen = world
    texts = [umbra.tenant.vector_key, lumen.tenant.vector_key, "", "pets", "cookbook"]
    malformed = where_clauses([index.TENANT_KEY, "category", "tag:dog"], [*texts, True, 0])
    where = data.draw(st.none() | chroma_where(texts) | chroma_where(texts) | chroma_where(texts) | malformed)
    try:
        hits = index.query_vectors(tenant=umbra.tenant, embedding=strays, limit=20, where=where)
        raw = index._collection(umbra.tenant).query(
            query_embeddings=[strays],
            n_results=20,
            where=index.scoped_where(umbra.tenant, where),
            include=["metadatas"],
        )
    except (ValueError, ChromaError):  # Chroma refuses a malformed clause: nothing is returned at all
        event("refused by Chroma")
        return
    event("with hits" if hits else "no hits")
    assert {hit.id for hit in hits} <= umbra.image_ids
    assert all(m[index.TENANT_KEY] == umbra.tenant.vector_key for m in raw["metadatas"][0])
    assert set(raw["ids"][0]) <= umbra.image_ids


@PROPERTY
@given(data=st.data())
def test_fetching_vectors_by_id_returns_only_the_tenants_own(world, strays, data):
    umbra, lumen = world
    pool = [*umbra.image_ids, *lumen.image_ids, "stray-lumen", "stray-untagged", str(uuid.uuid4())]
    ids = data.draw(st.lists(st.sampled_from(pool), max_size=8))
    assert set(index.fetch_vectors(tenant=umbra.tenant, ids=ids)) == set(ids) & umbra.image_ids
    assert set(index.fetch_metadata(tenant=umbra.tenant, ids=ids)) == set(ids) & umbra.image_ids


# --- the API -------------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_api_text_search_answers_only_with_the_callers_images(world, data):
    me, other = data.draw(callers(world))
    pairs = data.draw(search_params(me, other, with_q=True))
    response = token_client(me).get(f"/api/v1/search/?{urlencode(pairs)}")
    assert_only_own(response, me, other, allowed=sent(pairs))
    if response.status_code == 400:
        assert set(response.json()) <= SEARCH_FIELDS


@settings(PROPERTY, max_examples=20)  # each example embeds a picture
@given(data=st.data())
def test_api_image_search_answers_only_with_the_callers_images(world, data):
    me, other = data.draw(callers(world))
    in_query = data.draw(search_params(me, other, with_q=False))
    in_form = data.draw(search_params(me, other, with_q=False))
    picture = data.draw(st.sampled_from([p[0] for p in PICTURES]))
    form: dict[str, Any] = {}
    for key, value in in_form:
        form.setdefault(key, []).append(value)
    form["image"] = SimpleUploadedFile(picture, picture_bytes(picture))
    response = token_client(me).post(f"/api/v1/search/?{urlencode(in_query)}", form, format="multipart")
    ids = assert_only_own(response, me, other, allowed=sent(in_query + in_form))
    if response.status_code == 400:
        assert set(response.json()) <= SEARCH_FIELDS | {"image"}
    elif ids and not any(key in {"min_score", "category", "source", "tags"} for key, _ in in_query + in_form):
        # Unfiltered, the picture's own copy in the caller's tenant is the first hit.
        own = {image.original_filename.split("-", 2)[2]: str(image.id) for image in me.images}
        assert ids[0] == own[picture]


@PROPERTY
@given(data=st.data())
def test_api_similar_is_the_callers_own_or_a_404_like_a_missing_image(world, data):
    me, other = data.draw(callers(world))
    whose = data.draw(st.sampled_from(["mine", "mine", "other's", "missing", "junk"]))
    target = {
        "mine": lambda: str(data.draw(st.sampled_from(me.images)).id),
        "other's": lambda: str(data.draw(st.sampled_from(other.images)).id),
        "missing": lambda: str(uuid.uuid4()),
        "junk": lambda: data.draw(st.sampled_from([other.tenant.slug, "0", "%24ne", "..", "null"])),
    }[whose]()
    pairs = data.draw(search_params(me, other, with_q=False))
    client = token_client(me)
    response = client.get(f"/api/v1/images/{target}/similar/?{urlencode(pairs)}")
    if whose in {"other's", "missing"}:
        missing = client.get(f"/api/v1/images/{uuid.uuid4()}/similar/?{urlencode(pairs)}")
        assert (response.status_code, response.json()) == (missing.status_code, missing.json())
        assert response.status_code == 404
        return
    if whose == "junk":  # no route takes it: still a JSON 404, like every API answer
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
        return
    ids = assert_only_own(response, me, other, allowed=sent(pairs))
    assert target not in ids


@PROPERTY
@given(data=st.data())
def test_api_image_list_filters_only_ever_show_the_callers_images(world, data):
    me, other = data.draw(callers(world))
    listing = {
        "status": st.sampled_from([*AssetStatus.values, "READY", "", "$ne"]) | hostile_values(other),
        "tag": st.sampled_from(["dog", "cat", f"{other.tenant.slug}-only", "Dog "]) | hostile_values(other),
        "page": st.integers(-3, 5).map(str) | st.sampled_from(["last", "", "1e9", "x"]),
        "page_size": st.integers(-5, 10**6).map(str) | st.sampled_from(["", "x"]),
    }
    pairs = data.draw(search_params(me, other, with_q=False))
    pairs += data.draw(st.lists(st.one_of(*(st.tuples(st.just(k), v) for k, v in listing.items())), max_size=4))
    response = token_client(me).get(f"/api/v1/images/?{urlencode(pairs)}")
    if response.status_code == 404:  # a page past the end: DRF's answer, never another tenant's
        assert "page" in dict(pairs) and response.json() == {"detail": "Invalid page."}
        return
    assert response.status_code in {200, 400}, (response.status_code, response.content[:500])
    if response.status_code == 200:
        rows = response.json()["results"]
        assert {row["id"] for row in rows} <= me.image_ids
        assert response.json()["count"] <= len(me.images)
        assert leaked(response.content.decode(), other.secrets, allowed=sent(pairs)) == []
    else:
        assert set(response.json()) <= LIST_FIELDS
