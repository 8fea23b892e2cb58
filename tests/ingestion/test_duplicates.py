"""The same picture sent again is recognised: nothing is stored or embedded twice, and what the new
upload says about it (tags, an empty category or source) is added, not dropped."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.filters import MetadataFilters
from ingestion.models import ImageAsset
from search.services import search_by_text
from tests.conftest import api
from tests.factories import image_bytes


def test_the_same_bytes_again_merge_tags_and_fill_empty_fields_and_the_index_follows(acme, bob, transactional_db):
    client = api(bob, acme)
    data = image_bytes("PNG")
    first = client.post(
        "/api/v1/images/",
        {"file": SimpleUploadedFile("a.png", data), "tags": "dog", "source": "phone"},
        format="multipart",
    )
    again = client.post(
        "/api/v1/images/",
        {"file": SimpleUploadedFile("b.png", data), "tags": "beach, dog", "category": "pets", "source": "nas"},
        format="multipart",
    )
    assert (first.status_code, again.status_code) == (201, 200)
    body = again.json()
    assert body["id"] == first.json()["id"]
    assert body["merged"] == ["tags", "category"]
    assert (body["tags"], body["category"], body["source"]) == (["dog", "beach"], "pets", "phone")
    assert ImageAsset.objects.count() == 1
    found = search_by_text(tenant=acme, text="x", limit=5, filters=MetadataFilters(tags=("beach",), category="pets"))
    assert [str(r.asset.id) for r in found] == [body["id"]]


def test_the_same_bytes_with_nothing_new_change_nothing(acme, bob, transactional_db):
    client = api(bob, acme)
    data = image_bytes("PNG")
    client.post("/api/v1/images/", {"file": SimpleUploadedFile("a.png", data), "tags": "dog"}, format="multipart")
    again = client.post(
        "/api/v1/images/", {"file": SimpleUploadedFile("a.png", data), "tags": "Dog"}, format="multipart"
    )
    assert (again.status_code, again.json()["merged"]) == (200, [])
