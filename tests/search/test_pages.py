from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import login
from tests.search.conftest import upload_sample
from tests.testenv import SAMPLES
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def search_url(tenant, **params) -> str:
    from urllib.parse import urlencode

    return reverse("search:search", args=[tenant.slug]) + ("?" + urlencode(params) if params else "")


def result_ids(response) -> list[str]:
    return [str(r.asset.id) for r in response.context["results"]]


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_members_and_viewers_search_by_text(indexed, acme, who, request):
    response = login(request.getfixturevalue(who)).get(search_url(acme, q="a photo of a dog"))
    assert response.status_code == 200
    results = response.context["results"]
    assert len(results) == 3
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    page = response.content.decode()
    assert "More like this" in page and "Full image" in page
    assert f"{results[0].score:.3f}" in page


def test_an_image_query_finds_the_image_itself_first(indexed, acme, bob):
    with (SAMPLES / "dog-with-person.jpg").open("rb") as handle:
        response = login(bob).post(search_url(acme), {"image": handle})
    assert response.status_code == 200
    first = response.context["results"][0]
    assert str(first.asset.id) == str(indexed["dog-with-person.jpg"].id)
    assert first.distance == pytest.approx(0, abs=1e-4)


def test_an_unreadable_query_image_is_explained(indexed, acme, bob):
    response = login(bob).post(search_url(acme), {"image": SimpleUploadedFile("q.png", b"<html>")})
    assert response.status_code == 400
    assert "Unsupported file type" in response.content.decode()


def test_more_like_this_leaves_the_image_out(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    response = login(bob).get(reverse("search:similar", args=[acme.slug, dog.id]))
    assert response.status_code == 200
    ids = result_ids(response)
    assert str(dog.id) not in ids
    assert set(ids) == {str(indexed["dog-with-person.jpg"].id), str(indexed["cat.png"].id)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "pets"}, {"dog.jpg", "cat.png"}),
        ({"source": "archive"}, {"cat.png"}),
        ({"tags": "dog, person"}, {"dog-with-person.jpg"}),
        ({"tags": "dog", "category": "pets"}, {"dog.jpg"}),
        ({"uploaded_to": "2000-01-01"}, set()),
    ],
)
def test_filters_narrow_text_search(indexed, acme, bob, params, expected):
    response = login(bob).get(search_url(acme, q="a photo", **params))
    names = {r.asset.original_filename for r in response.context["results"]}
    assert names == expected


def test_min_score_hides_weak_matches_and_says_so(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    strict = login(bob).get(reverse("search:similar", args=[acme.slug, dog.id]) + "?min_score=0.99999")
    assert strict.context["results"] == []
    assert "No matches scoring at least 0.99999" in strict.content.decode()


def test_the_result_count_is_adjustable_and_capped(indexed, acme, bob, settings):
    client = login(bob)
    assert len(client.get(search_url(acme, q="dog", limit=1)).context["results"]) == 1
    settings.SEARCH_MAX_LIMIT = 2
    response = client.get(search_url(acme, q="dog", limit=100))
    assert response.status_code == 200
    assert len(response.context["results"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "many"}, "limit"),
        ({"min_score": "2"}, "min_score"),
        ({"uploaded_from": "2024-13-45"}, "uploaded_from"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(indexed, acme, bob, params, field):
    response = login(bob).get(search_url(acme, q="dog", **params))
    assert response.status_code == 400
    assert response.context["params"].errors[field]


def test_an_empty_tenant_says_so(acme, bob):
    response = login(bob).get(search_url(acme, q="dog"))
    assert "Acme has no images yet" in response.content.decode()


def test_only_ready_images_appear_and_processing_ones_are_announced(indexed, acme, bob):
    ImageAsset.objects.filter(id=indexed["cat.png"].id).update(status=AssetStatus.PROCESSING)
    response = login(bob).get(search_url(acme, q="a photo"))
    assert str(indexed["cat.png"].id) not in result_ids(response)
    assert "1 image is still being processed" in response.content.decode()


def test_a_failed_image_is_not_a_result_even_with_a_vector(indexed, acme, bob):
    ImageAsset.objects.filter(id=indexed["cat.png"].id).update(status=AssetStatus.FAILED)
    assert str(indexed["cat.png"].id) not in result_ids(login(bob).get(search_url(acme, q="cat")))


def test_more_like_this_on_an_image_without_vector_explains(indexed, acme, bob):
    cat = indexed["cat.png"]
    index.delete_vectors(tenant=acme, ids=[str(cat.id)])
    ImageAsset.objects.filter(id=cat.id).update(status=AssetStatus.PENDING)
    response = login(bob).get(reverse("search:similar", args=[acme.slug, cat.id]))
    assert response.status_code == 409
    assert "has no vector yet" in response.content.decode()


def test_the_detail_page_shows_the_image_and_its_actions(indexed, acme, bob, vera):
    dog = indexed["dog.jpg"]
    url = reverse("search:detail", args=[acme.slug, dog.id])
    page = login(bob).get(url).content.decode()
    assert "dog.jpg" in page and "pets" in page and "#dog" in page and "Ready" in page
    assert reverse("search:similar", args=[acme.slug, dog.id]) in page
    assert "Delete" in page
    assert "Delete</button>" not in login(vera).get(url).content.decode()


def test_deleting_removes_file_thumbnail_row_and_vector_and_nothing_else(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    names = [dog.file.name, dog.thumbnail.name]
    response = login(bob).post(reverse("search:delete", args=[acme.slug, dog.id]))
    assert response.status_code == 302
    assert not ImageAsset.objects.filter(id=dog.id).exists()
    assert not any(default_storage.exists(name) for name in names)
    assert index.fetch_vectors(tenant=acme, ids=[str(dog.id)]) == {}
    assert index.count_vectors(tenant=acme) == 2
    assert ImageAsset.objects.for_tenant(acme).count() == 2


def test_viewers_may_not_delete(indexed, acme, vera):
    response = login(vera).post(reverse("search:delete", args=[acme.slug, indexed["dog.jpg"].id]))
    assert response.status_code == 403
    assert ImageAsset.objects.filter(id=indexed["dog.jpg"].id).exists()


@pytest.mark.parametrize(
    "name", ["search:detail", "search:similar", "search:delete", "ingestion:thumbnail", "ingestion:original"]
)
def test_another_tenants_member_gets_404_for_every_image_page(indexed, acme, globex, charlie, name):
    asset = indexed["dog.jpg"]
    client = login(charlie)
    method = client.post if name == "search:delete" else client.get
    assert method(reverse(name, args=[acme.slug, asset.id])).status_code == 404
    assert method(reverse(name, args=[globex.slug, asset.id])).status_code == 404
    assert ImageAsset.objects.filter(id=asset.id).exists()


def test_another_tenants_search_never_shows_this_tenants_images(indexed, globex, charlie):
    upload_sample(globex, charlie, "cat.png")
    response = login(charlie).get(search_url(globex, q="a photo of a dog"))
    assert {r.asset.tenant_id for r in response.context["results"]} == {globex.id}


@pytest.mark.parametrize("name", ["search:search"])
def test_anonymous_visitors_are_sent_to_log_in(acme, client, name):
    response = client.get(reverse(name, args=[acme.slug]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_user_supplied_text_is_escaped(acme, bob):
    upload_sample(acme, bob, "dog.jpg", category="<script>alert(1)</script>")
    asset = ImageAsset.objects.get()
    ImageAsset.objects.filter(id=asset.id).update(original_filename="<img src=x onerror=alert(1)>.jpg")
    page = login(bob).get(reverse("search:detail", args=[acme.slug, asset.id])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<img src=x onerror" not in page
