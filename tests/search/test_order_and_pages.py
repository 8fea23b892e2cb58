"""Results sorted by score or upload date after the `min_score` cut, walked a page at a time within
the ranked window; answers carry `count` and `next`, and the page's links keep every parameter,
a search by picture too (the picture is kept in the session)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from ingestion.models import ImageAsset
from tenants.models import Role
from tenants.services import membership_set, tenant_create
from tests.conftest import api, login
from tests.search.conftest import upload_sample
from tests.testenv import SAMPLES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dated(indexed):
    """The three pictures uploaded a day apart: cat.png newest, then dog-with-person.jpg, dog.jpg oldest."""
    now = timezone.now()
    for days, name in enumerate(["cat.png", "dog-with-person.jpg", "dog.jpg"]):
        ImageAsset.objects.filter(id=indexed[name].id).update(created_at=now - timedelta(days=days))
    return indexed


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_sort_by_upload_date_orders_the_matches_that_pass_min_score(dated, acme, bob):
    client = api(bob, acme)
    by_score = client.get("/api/v1/search/", {"q": "a photo"}).json()["results"]
    assert [r["score"] for r in by_score] == sorted((r["score"] for r in by_score), reverse=True)
    created = {str(a.id): a.created_at for a in ImageAsset.objects.all()}
    for sort, newest_first in (("-uploaded_at", True), ("uploaded_at", False)):
        found = ids(client.get("/api/v1/search/", {"q": "a photo", "sort": sort}))
        assert found == sorted(created, key=created.__getitem__, reverse=newest_first)
    cut = by_score[1]["score"] - 1e-6  # the best two pass
    kept = client.get("/api/v1/search/", {"q": "a photo", "sort": "uploaded_at", "min_score": cut}).json()
    assert kept["count"] == 2 and kept["sort"] == "uploaded_at"
    best_two = {r["id"] for r in by_score[:2]}
    assert [r["id"] for r in kept["results"]] == sorted(best_two, key=created.__getitem__)


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_pages_walk_the_ranked_matches_and_next_keeps_every_parameter(dated, acme, bob):
    client = api(bob, acme)
    everything = ids(client.get("/api/v1/search/", {"q": "a photo", "not": "grass", "sort": "-uploaded_at"}))
    url = "/api/v1/search/?q=a+photo&not=grass&sort=-uploaded_at&limit=1&category=&not_weight=0.5"
    walked = []
    while url:
        body = client.get(url).json()
        assert (body["count"], body["limit"]) == (3, 1)
        walked += [row["id"] for row in body["results"]]
        url = body["next"]
        if url:
            query = parse_qs(urlsplit(url).query)
            assert (query["q"], query["not"], query["sort"], query["not_weight"]) == (
                ["a photo"],
                ["grass"],
                ["-uploaded_at"],
                ["0.5"],
            )
    assert walked == everything
    past = client.get("/api/v1/search/", {"q": "a photo", "limit": 1, "page": 9}).json()
    assert (past["results"], past["count"], past["next"]) == ([], 3, None)


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_picture_and_similar_searches_page_too(dated, acme, bob):
    client = api(bob, acme)
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        first = client.post("/api/v1/search/?limit=2", {"image": handle, "q": "a dog"}, format="multipart").json()
    assert first["count"] == 3 and len(first["results"]) == 2
    assert parse_qs(urlsplit(first["next"]).query) == {"limit": ["2"], "q": ["a dog"], "page": ["2"]}
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        second = client.post(first["next"], {"image": handle}, format="multipart").json()
    assert {r["id"] for r in second["results"]}.isdisjoint(r["id"] for r in first["results"])
    assert second["next"] is None and len(second["results"]) == 1
    dog = dated["dog.jpg"]
    similar = client.get(f"/api/v1/images/{dog.id}/similar/", {"limit": 1, "sort": "uploaded_at"}).json()
    assert similar["count"] == 2
    assert parse_qs(urlsplit(similar["next"]).query) == {"limit": ["1"], "sort": ["uploaded_at"], "page": ["2"]}


def links(response) -> dict[str, dict[str, list[str]]]:
    html = response.content.decode()
    found = {}
    for href, text in re.findall(r'<a[^>]*href="(\?[^"]*)"[^>]*>([^<]+)</a>', html):
        found[unescape(text).strip()] = parse_qs(urlsplit(unescape(href)).query)
    return found


def test_the_pages_links_keep_every_parameter(dated, acme, bob):
    client = login(bob)
    url = reverse("search:search", args=[acme.slug])
    params = {"q": ["a photo", "an animal"], "not": ["grass"], "category": ["pets"], "limit": ["1"]}
    first = client.get(url, params)
    assert first.status_code == 200 and first.context["found"].count == 2
    found = links(first)
    assert found["Next →"] == {**params, "page": ["2"]}
    assert found["Newest first"] == {**params, "sort": ["-uploaded_at"]}
    second = client.get(url, {**params, "page": "2"})
    assert links(second)["← Previous"] == {**params, "page": ["1"]}
    assert {str(r.asset.id) for r in [*first.context["results"], *second.context["results"]]} == {
        str(dated["dog.jpg"].id),
        str(dated["cat.png"].id),
    }


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_a_picture_is_kept_for_the_session_so_its_pages_and_orders_work(dated, acme, bob):
    client = login(bob)
    url = reverse("search:search", args=[acme.slug])
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        first = client.post(url, {"image": handle, "q": "a dog", "limit": "1"})
    assert first.status_code == 200 and 'data-testid="query-picture"' in first.content.decode()
    assert 'src="data:image/jpeg;base64,' in first.content.decode()
    assert str(first.context["results"][0].asset.id) == str(dated["dog.jpg"].id)
    following = links(first)["Next →"]
    token = following["picture"][0]
    assert following == {"q": ["a dog"], "limit": ["1"], "picture": [token], "page": ["2"]}
    second = client.get(url, {**following})
    assert second.status_code == 200 and 'data-testid="query-picture"' in second.content.decode()
    newest = client.get(url, {**links(second)["Newest first"]})
    assert [str(r.asset.id) for r in newest.context["results"]] == [str(dated["cat.png"].id)]
    assert "picture" not in links(second)["Search without the picture"]
    # Another session, or the same person in another tenant, cannot use the token.
    assert login(bob).get(url, {"picture": token}).status_code == 400
    other = tenant_create(slug="initech", name="Initech", owner=bob)
    membership_set(tenant=other, user=bob, role=Role.OWNER)
    upload_sample(other, bob, "cat.png")
    refused = client.get(reverse("search:search", args=[other.slug]), {"picture": token})
    assert refused.status_code == 400 and "picture" in refused.context["params"].errors


@pytest.mark.parametrize(
    ("query", "field"), [("q=x&sort=size", "sort"), ("q=x&page=-1", "page"), ("q=x&not_weight=9", "not_weight")]
)
def test_a_bad_parameter_on_the_page_is_a_400_naming_it(indexed, acme, bob, query, field):
    response = login(bob).get(reverse("search:search", args=[acme.slug]) + "?" + query)
    assert response.status_code == 400 and field in response.context["params"].errors
