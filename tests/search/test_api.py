from __future__ import annotations

import numpy as np
import pytest
from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from ingestion.models import AssetStatus, ImageAsset
from tenants.models import ApiToken
from tenants.tokens import api_token_revoke
from tests.conftest import api
from tests.factories import image_bytes
from tests.search.conftest import SAMPLE_NAMES, upload_sample
from tests.testenv import CHECKPOINT, SAMPLES, TEST_MODEL
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_a_token_in_either_scheme_reaches_its_tenant(indexed, acme, bob, scheme):
    response = api(bob, acme, scheme).get("/api/v1/images/")
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_anonymous_unknown_and_revoked_tokens_get_401(indexed, acme, bob):
    assert APIClient().get("/api/v1/images/").status_code == 401
    assert APIClient().get("/api/v1/images/")["WWW-Authenticate"].startswith("Token")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token isk_not-a-real-key")
    assert stranger.get("/api/v1/search/?q=dog").status_code == 401
    client = api(bob, acme)
    api_token_revoke(token=ApiToken.objects.get())
    assert client.get("/api/v1/images/").status_code == 401


def test_a_token_stops_working_when_its_user_leaves_the_tenant(indexed, acme, bob):
    client = api(bob, acme)
    bob.memberships.all().delete()
    assert client.get("/api/v1/images/").status_code == 401


def test_tokens_record_when_they_were_last_used(indexed, acme, bob):
    client = api(bob, acme)
    assert ApiToken.objects.get().last_used_at is None
    client.get("/api/v1/images/")
    assert ApiToken.objects.get().last_used_at is not None


def test_upload_returns_201_with_the_image_and_it_becomes_ready(acme, bob):
    response = api(bob, acme).post(
        "/api/v1/images/",
        {
            "file": SimpleUploadedFile("red.png", image_bytes("PNG")),
            "category": "tests",
            "source": "api",
            "tags": "a, b",
        },
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] in {"pending", "processing", "ready"}
    assert (body["filename"], body["category"], body["source"], body["tags"]) == ("red.png", "tests", "api", ["a", "b"])
    assert body["links"]["self"] == f"/api/v1/images/{body['id']}/"
    assert ImageAsset.objects.get(id=body["id"]).status == AssetStatus.READY


def test_the_same_bytes_again_answer_200_with_the_existing_image(acme, bob):
    client = api(bob, acme)
    data = image_bytes("PNG")
    first = client.post("/api/v1/images/", {"file": SimpleUploadedFile("a.png", data)}, format="multipart")
    again = client.post("/api/v1/images/", {"file": SimpleUploadedFile("b.png", data)}, format="multipart")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"file": SimpleUploadedFile("x.png", b"<svg/>")}, "Unsupported file type"),
        ({"file": SimpleUploadedFile("x.jpg", b"")}, "The file is empty"),
        ({}, "No file was submitted"),
    ],
)
def test_an_invalid_upload_is_a_400_with_a_reason_and_stores_nothing(acme, bob, payload, reason, media_files):
    response = api(bob, acme).post("/api/v1/images/", payload, format="multipart")
    assert response.status_code == 400
    assert reason in response.json()["file"][0]
    assert ImageAsset.objects.count() == 0 and media_files() == []


def test_viewers_may_read_and_search_but_not_upload_or_delete(indexed, acme, vera):
    client = api(vera, acme)
    dog = indexed["dog.jpg"]
    assert client.get("/api/v1/images/").status_code == 200
    assert client.get(f"/api/v1/images/{dog.id}/").status_code == 200
    assert client.get("/api/v1/search/?q=dog").status_code == 200
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        assert client.post("/api/v1/search/", {"image": handle}, format="multipart").status_code == 200
    upload = client.post("/api/v1/images/", {"file": SimpleUploadedFile("x.png", image_bytes())}, format="multipart")
    assert upload.status_code == 403
    assert upload.json()["detail"] == "Your role in this tenant may search but not upload images."
    refused = client.delete(f"/api/v1/images/{dog.id}/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Your role in this tenant may search but not delete images."  # as on the pages
    assert ImageAsset.objects.filter(id=dog.id).exists()


def test_list_is_paginated_and_filterable(indexed, acme, bob):
    client = api(bob, acme)
    page = client.get("/api/v1/images/?page_size=2").json()
    assert (page["count"], len(page["results"])) == (3, 2) and page["next"]
    assert {r["filename"] for r in client.get("/api/v1/images/?category=pets").json()["results"]} == {
        "dog.jpg",
        "cat.png",
    }
    assert {r["filename"] for r in client.get("/api/v1/images/?tag=person").json()["results"]} == {
        "dog-with-person.jpg"
    }
    ImageAsset.objects.filter(id=indexed["cat.png"].id).update(status=AssetStatus.FAILED)
    assert [r["filename"] for r in client.get("/api/v1/images/?status=failed").json()["results"]] == ["cat.png"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=done", "status"), ("uploaded_from=yesterday", "uploaded_from"), ("page_size=x&page=zz", None)],
)
def test_bad_list_parameters_are_4xx_naming_them(indexed, acme, bob, query, field):
    response = api(bob, acme).get(f"/api/v1/images/?{query}")
    assert 400 <= response.status_code < 500
    if field:
        assert response.status_code == 400 and field in response.json()


def test_another_tenants_id_is_a_404_exactly_like_a_missing_one(indexed, acme, globex, charlie):
    client = api(charlie, globex)
    dog = indexed["dog.jpg"]
    missing = "00000000-0000-0000-0000-000000000000"
    for suffix in ("", "similar/", "file/", "thumbnail/"):
        theirs = client.get(f"/api/v1/images/{dog.id}/{suffix}")
        nothing = client.get(f"/api/v1/images/{missing}/{suffix}")
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json() == nothing.json()
    assert client.delete(f"/api/v1/images/{dog.id}/").status_code == 404
    assert ImageAsset.objects.filter(id=dog.id).exists()
    assert client.get("/api/v1/images/").json()["count"] == 0
    assert client.get("/api/v1/search/?q=dog").json()["results"] == []


def test_delete_removes_file_thumbnail_row_and_vector(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    names = [dog.file.name, dog.thumbnail.name]
    assert api(bob, acme).delete(f"/api/v1/images/{dog.id}/").status_code == 204
    assert not ImageAsset.objects.filter(id=dog.id).exists()
    assert not any(default_storage.exists(n) for n in names)
    assert index.fetch_vectors(tenant=acme, ids=[str(dog.id)]) == {}
    assert index.count_vectors(tenant=acme) == 2


def test_files_and_thumbnails_are_served_to_the_tenant_with_safe_headers(indexed, acme, bob):
    client = api(bob, acme)
    dog = indexed["dog.jpg"]
    original = client.get(f"/api/v1/images/{dog.id}/file/")
    assert original.status_code == 200 and original["Content-Type"] == "image/jpeg"
    assert b"".join(original.streaming_content) == (SAMPLES / "dog.jpg").read_bytes()
    thumbnail = client.get(f"/api/v1/images/{dog.id}/thumbnail/")
    assert thumbnail["X-Content-Type-Options"] == "nosniff"


@pytest.mark.slow  # Chroma's own OpenCLIP function: a second model
def test_text_search_ranks_exactly_as_chromas_openclip_function(indexed, acme, bob):
    reference = OpenCLIPEmbeddingFunction(model_name=TEST_MODEL, checkpoint=str(CHECKPOINT))
    pictures = reference([np.array(Image.open(SAMPLES / name).convert("RGB")) for name in SAMPLE_NAMES])
    for text in ("a photo of a dog", "a photo of a cat"):
        [query] = reference([text])
        expected = [
            str(indexed[name].id)
            for name, _ in sorted(
                zip(SAMPLE_NAMES, pictures, strict=True), key=lambda pair: -float(np.dot(query, pair[1]))
            )
        ]
        response = api(bob, acme).get("/api/v1/search/", {"q": text, "limit": 10})
        assert response.status_code == 200
        assert ids(response) == expected
        row = response.json()["results"][0]
        assert {"id", "score", "distance", "filename", "status", "links"} <= set(row)
        assert row["score"] == pytest.approx(1 - row["distance"], abs=1e-5)


def test_image_search_finds_the_image_itself_first(indexed, acme, bob):
    with (SAMPLES / "dog-with-person.jpg").open("rb") as handle:
        response = api(bob, acme).post(
            "/api/v1/search/?limit=2", {"image": handle, "category": "people"}, format="multipart"
        )
    assert response.status_code == 200
    [first] = response.json()["results"]
    assert first["id"] == str(indexed["dog-with-person.jpg"].id)
    assert first["distance"] == pytest.approx(0, abs=1e-4)


def test_similar_leaves_the_image_out_and_honours_filters(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    client = api(bob, acme)
    assert set(ids(client.get(f"/api/v1/images/{dog.id}/similar/?limit=5"))) == {
        str(indexed["dog-with-person.jpg"].id),
        str(indexed["cat.png"].id),
    }
    assert ids(client.get(f"/api/v1/images/{dog.id}/similar/?tags=cat")) == [str(indexed["cat.png"].id)]


def test_similar_for_an_image_not_yet_embedded_is_a_409(acme, bob):
    asset = upload_sample(acme, bob, "cat.png")
    index.delete_vectors(tenant=acme, ids=[str(asset.id)])
    ImageAsset.objects.filter(id=asset.id).update(status=AssetStatus.PENDING)
    response = api(bob, acme).get(f"/api/v1/images/{asset.id}/similar/")
    assert response.status_code == 409
    assert "no vector yet" in response.json()["detail"]


def test_a_limit_beyond_the_maximum_is_capped(indexed, acme, bob, settings):
    response = api(bob, acme).get("/api/v1/search/", {"q": "dog", "limit": 100000})
    assert response.status_code == 200
    assert response.json()["limit"] == settings.SEARCH_MAX_LIMIT


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "q"),
        ("q=dog&limit=0", "limit"),
        ("q=dog&limit=ten", "limit"),
        ("q=dog&min_score=1.5", "min_score"),
        ("q=dog&uploaded_from=2024-02-30", "uploaded_from"),
        ("q=dog&uploaded_from=2024-02-02&uploaded_to=2024-01-01", "uploaded_to"),
        ("q=" + "x" * 1001, "q"),
    ],
)
def test_bad_search_parameters_are_a_400_that_names_them(indexed, acme, bob, query, field):
    response = api(bob, acme).get(f"/api/v1/search/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_image_search_without_an_image_is_a_400(acme, bob):
    response = api(bob, acme).post("/api/v1/search/", {"limit": "3"}, format="multipart")
    assert response.status_code == 400 and "image" in response.json()
    assert response.json()["image"] == ["Send the query picture as a file named 'image'."]
    as_text = api(bob, acme).post("/api/v1/search/", {"image": "not a file"}, format="multipart")
    assert as_text.status_code == 400 and as_text.json()["image"] == response.json()["image"]


def test_the_schema_and_its_docs_are_served(db):
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/images/", "/api/v1/images/{id}/similar/", "/api/v1/search/"):
        assert path in text
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_deleting_while_the_index_is_unreachable_is_a_503_and_deletes_nothing(indexed, acme, bob, settings):
    dog = indexed["dog.jpg"]
    client = api(bob, acme)
    settings.CHROMA_URL = "http://127.0.0.1:9"
    index.reset_connection()
    try:
        response = client.delete(f"/api/v1/images/{dog.id}/")
    finally:
        settings.CHROMA_URL = ""
        index.reset_connection()
    assert response.status_code == 503 and "retry" in response.json()["detail"]
    assert ImageAsset.objects.filter(id=dog.id).exists() and default_storage.exists(dog.file.name)
    assert index.fetch_vectors(tenant=acme, ids=[str(dog.id)]) != {}


def test_a_search_that_chroma_keeps_failing_internally_is_a_503_not_a_500(indexed, acme, bob, failing_queries):
    failing_queries(acme, failures=len(index.RACE_RETRY_DELAYS) + 1)
    response = api(bob, acme).get("/api/v1/search/", {"q": "a dog"})
    assert response.status_code == 503 and "retry" in response.json()["detail"]
    assert api(bob, acme).get("/api/v1/search/", {"q": "a dog"}).status_code == 200


def test_a_path_under_the_api_that_names_no_route_is_a_json_404(acme, bob):
    client = api(bob, acme)
    for path in ("/api/v1/images/not-a-uuid/similar/", "/api/v1/images/a.b/", "/api/v1/nothing/"):
        response = client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert b"<h1>Not found</h1>" in client.get("/no/such/page/").content  # pages keep the HTML one


def test_list_filters_are_parsed_like_the_search_filters(indexed, acme, bob):
    client = api(bob, acme)
    found = client.get("/api/v1/images/", {"tag": "  PERSON "}).json()["results"]
    assert [r["filename"] for r in found] == ["dog-with-person.jpg"]  # normalised as tags are stored
    inverted = client.get("/api/v1/images/", {"uploaded_from": "2026-02-01", "uploaded_to": "2026-01-01"})
    assert inverted.status_code == 400
    assert "uploaded_to" in inverted.json()


def test_a_single_tag_filters_a_search_as_it_filters_the_image_list(indexed, acme, bob):
    client = api(bob, acme)
    searched = client.get("/api/v1/search/", {"q": "a dog", "tag": "cat"}).json()
    listed = client.get("/api/v1/images/", {"tag": "cat"}).json()
    assert (
        {hit["id"] for hit in searched["results"]}
        == {row["id"] for row in listed["results"]}
        == {str(indexed["cat.png"].id)}
    )
    assert client.get("/api/v1/search/", {"q": "a dog", "tag": "zzz"}).json()["count"] == 0
