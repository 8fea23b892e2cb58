"""An image's category, source and tags are edited on its page and through PATCH; the index has the
change at once (a filter on the new tag finds it, on the old one no longer), nothing is embedded
again, the upload's rules apply, and viewers cannot edit."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from ingestion.filters import MetadataFilters
from ingestion.models import MAX_TAGS, AssetStatus, ImageAsset
from ingestion.services import pipeline
from ingestion.services.editing import asset_update_metadata
from search.services import search_by_text
from tenants.models import AuditEvent, TokenScope
from tenants.tokens import api_token_create
from tests.conftest import keyed_client, login
from tests.search.conftest import upload_sample
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dog(acme, bob):
    return upload_sample(acme, bob, "dog.jpg", category="pets", source="cookbook", tags=["dog", "park"])


def found_by(tenant, **filters) -> set[str]:
    hits = search_by_text(tenant=tenant, text="a photo", limit=50, filters=MetadataFilters(**filters))
    return {str(hit.asset.id) for hit in hits}


def writer(user, tenant):
    return keyed_client(api_token_create(tenant=tenant, user=user, name="w", scope=TokenScope.WRITE)[1])


def test_patch_replaces_tags_and_the_index_follows_at_once_without_embedding_again(acme, bob, dog, monkeypatch):
    vector_before = index.fetch_vectors(tenant=acme, ids=[str(dog.id)])[str(dog.id)]
    embedded_at = dog.embedded_at
    monkeypatch.setattr(pipeline, "get_embedder", lambda: pytest.fail("an edit must not embed"))
    answer = writer(bob, acme).patch(f"/api/v1/images/{dog.id}/", {"tags": ["Beach", " sunny "]}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["tags"], answer.json()["category"], answer.json()["source"]) == (
        ["beach", "sunny"], "pets", "cookbook",
    )  # fmt: skip
    assert found_by(acme, tags=("beach",)) == {str(dog.id)}
    assert found_by(acme, tags=("dog",)) == set()
    metadata = index.fetch_metadata(tenant=acme, ids=[str(dog.id)])[str(dog.id)]
    assert "tag:dog" not in metadata and metadata["tag:sunny"] is True
    dog.refresh_from_db()
    assert dog.embedded_at == embedded_at and dog.tag_index == ",beach,sunny,"
    vector_after = index.fetch_vectors(tenant=acme, ids=[str(dog.id)])[str(dog.id)]
    assert np.array_equal(vector_before, vector_after)


def test_patch_changes_only_the_fields_given(acme, bob, dog):
    answer = writer(bob, acme).patch(f"/api/v1/images/{dog.id}/", {"category": "animals"}, format="json")
    assert answer.json()["category"] == "animals" and answer.json()["tags"] == ["dog", "park"]
    assert found_by(acme, category="animals", tags=("dog",)) == {str(dog.id)}
    assert found_by(acme, category="pets") == set()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags", f"At most {MAX_TAGS} tags"),
        ({"tags": ["x" * 51]}, "tags", "1 to 50 characters"),
        ({"tags": [1, 2]}, "tags", "list of words"),
        ({"category": "c" * 101}, "category", "at most 100 characters"),
        ({"source": None}, "source", "Give a text"),
    ],
)
def test_patch_refuses_what_an_upload_refuses_and_changes_nothing(acme, bob, dog, body, field, words):
    answer = writer(bob, acme).patch(f"/api/v1/images/{dog.id}/", body, format="json")
    assert answer.status_code == 400
    assert words in " ".join(answer.json()[field])
    dog.refresh_from_db()
    assert (dog.category, dog.tags) == ("pets", ["dog", "park"])


def test_viewers_cannot_edit_and_another_tenant_gets_404(acme, globex, vera, charlie, dog):
    viewer = keyed_client(api_token_create(tenant=acme, user=vera, name="v", scope=TokenScope.ADMIN)[1])
    refused = viewer.patch(f"/api/v1/images/{dog.id}/", {"tags": ["x"]}, format="json")
    assert refused.status_code == 403 and "not edit" in refused.json()["detail"]
    other = writer(charlie, globex).patch(f"/api/v1/images/{dog.id}/", {"tags": ["x"]}, format="json")
    assert other.status_code == 404 and other.json() == {"detail": "Not found."}
    page = login(vera).post(reverse("search:edit", args=["acme", dog.id]), {"tags": "x"})
    assert page.status_code == 403
    assert login(charlie).post(reverse("search:edit", args=["acme", dog.id]), {"tags": "x"}).status_code == 404
    dog.refresh_from_db()
    assert dog.tags == ["dog", "park"]
    assert 'id="edit-metadata"' not in login(vera).get(reverse("search:detail", args=["acme", dog.id])).content.decode()


def test_the_page_edits_with_the_upload_rules_and_records_it_in_the_audit_log(acme, bob, dog):
    client = login(bob)
    page = reverse("search:detail", args=["acme", dog.id])
    html = client.get(page).content.decode()
    assert 'id="edit-metadata"' in html and 'value="dog, park"' in html
    too_many = ", ".join(f"t{i}" for i in range(MAX_TAGS + 1))
    refused = client.post(reverse("search:edit", args=["acme", dog.id]), {"tags": too_many, "category": "pets"})
    assert refused.status_code == 400 and f"At most {MAX_TAGS} tags" in refused.content.decode()
    saved = client.post(
        reverse("search:edit", args=["acme", dog.id]), {"category": "", "source": "studio", "tags": "Dog, Leash"}
    )
    assert (saved.status_code, saved["Location"]) == (302, page)
    dog.refresh_from_db()
    assert (dog.category, dog.source, dog.tags) == ("", "studio", ["dog", "leash"])
    assert found_by(acme, tags=("leash",), source="studio") == {str(dog.id)}
    assert found_by(acme, source="cookbook") == set()
    event = AuditEvent.objects.get(tenant=acme, action="image.edited")
    assert event.actor_user == bob and event.detail["changed"] == ["category", "source", "tags"]


def test_an_edit_while_the_image_is_embedded_reaches_its_vector(acme, bob, monkeypatch, settings):
    """The edit commits after the embedder read the row and before it wrote the vector: the edit found
    no record to change, so the embedder brings the record up to date after writing it."""
    settings.EMBED_RUNNER = "thread"  # the upload only stores; this test runs the embedder itself
    monkeypatch.setattr("ingestion.background.notify", lambda: None)
    image = upload_sample(acme, bob, "cat.png", tags=["cat"])
    assert image.status == AssetStatus.PENDING
    real_upsert = index.upsert_vectors

    def upsert_after_an_edit(**kwargs):
        row = ImageAsset.objects.get(id=image.id)
        asset_update_metadata(asset=row, category="pets", source="", tags=["cat", "sofa"])
        real_upsert(**kwargs)

    monkeypatch.setattr(index, "upsert_vectors", upsert_after_an_edit)
    pipeline.assets_embed(asset_ids=[str(image.id)], top_up=False)
    assert found_by(acme, tags=("sofa",), category="pets") == {str(image.id)}
