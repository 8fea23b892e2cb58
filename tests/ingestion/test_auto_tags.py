"""Auto-tags: a tenant's vocabulary, the labels each ready image passes AUTO_TAG_MIN_SCORE for
(computed from its stored vector), shown on the image, filterable with `label=` in the index and the
database alike, and the whole tenant relabelled in the background when the vocabulary changes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.urls import reverse

from ingestion.filters import MetadataFilters
from ingestion.models import BulkAction, ImageAsset, LabelVocabulary
from ingestion.services import bulk
from ingestion.services.labels import PROMPT, vocabulary_set
from ingestion.services.requeue import assets_reembed
from search.services import search_by_text
from tenants.models import AuditEvent
from tenants.tokens import api_token_create
from tests.conftest import api, keyed_client, login
from tests.ingestion.test_library import add
from vectors import index
from vectors.embedding import get_embedder
from vectors.layout import LABEL_PREFIX

pytestmark = pytest.mark.django_db(transaction=True)
VOCABULARY = ["receipt", "screenshot", "whiteboard", "cat", "dog"]


@pytest.fixture
def images(acme, bob):
    return [add(acme, bob, n, size=64 + 7 * n) for n in range(6)]


def scores(tenant, assets, labels) -> np.ndarray:
    """Cosine similarity of each image's stored vector to each label's prompt, worked out here."""
    stored = index.fetch_vectors(tenant=tenant, ids=[str(a.id) for a in assets])
    prompts = get_embedder().embed_texts([PROMPT.format(label=label) for label in labels])
    return np.stack([stored[str(a.id)] for a in assets]) @ prompts.T


def expected_labels(row: np.ndarray, labels: list[str], minimum: float) -> list[str]:
    return [labels[i] for i in np.argsort(-row, kind="stable") if row[i] >= minimum]


def admin_api(user, tenant):
    _, key = api_token_create(tenant=tenant, user=user, name="tests", scope="admin")
    return keyed_client(key)


def labelled(tenant, label: str) -> set[str]:
    hits = search_by_text(tenant=tenant, text="a photo", limit=50, filters=MetadataFilters(labels=(label,)))
    return {str(hit.asset.id) for hit in hits}


def test_each_image_gets_the_labels_whose_similarity_passes_the_minimum(acme, bob, images, settings):
    table = scores(acme, images, VOCABULARY)
    settings.AUTO_TAG_MIN_SCORE = float(np.median(table))  # some labels pass, some do not
    action = vocabulary_set(tenant=acme, labels=", ".join(VOCABULARY), updated_by=bob)
    assert action is not None
    action.refresh_from_db()
    assert (action.status, action.total, action.processed) == ("done", 6, 6)
    for asset, row in zip(images, table, strict=True):
        asset.refresh_from_db()
        assert asset.labels == expected_labels(row, VOCABULARY, settings.AUTO_TAG_MIN_SCORE)
        [metadata] = index.fetch_metadata(tenant=acme, ids=[str(asset.id)]).values()
        assert sorted(k.removeprefix(LABEL_PREFIX) for k in metadata if k.startswith(LABEL_PREFIX)) == sorted(
            asset.labels
        )
    assert 0 < sum(len(a.labels) for a in ImageAsset.objects.all()) < len(images) * len(VOCABULARY)
    for label in VOCABULARY:  # the index and the database find the same images for each label
        having = {str(a.id) for a in ImageAsset.objects.all() if label in a.labels}
        assert labelled(acme, label) == having
        assert {str(a.id) for a in MetadataFilters(labels=(label,)).apply(ImageAsset.objects.all())} == having


def test_a_batch_embedded_together_gives_each_image_its_own_labels(acme, bob, images, settings):
    """The pipeline marks a batch ready in one statement: each row must still get its own labels."""
    table = scores(acme, images, VOCABULARY)
    settings.AUTO_TAG_MIN_SCORE = float(np.median(table))
    vocabulary_set(tenant=acme, labels=", ".join(VOCABULARY), updated_by=bob)
    ImageAsset.objects.update(labels=[], label_index="")
    assets_reembed(assets=images)  # the six embedded again, in one batch
    wanted = [expected_labels(row, VOCABULARY, settings.AUTO_TAG_MIN_SCORE) for row in table]
    assert len({tuple(labels) for labels in wanted}) > 1  # rows that differ
    for asset, labels in zip(images, wanted, strict=True):
        asset.refresh_from_db()
        assert (asset.status, asset.labels) == ("ready", labels)
        assert asset.label_index == (f",{','.join(labels)}," if labels else "")


def test_an_upload_is_labelled_when_it_becomes_ready_and_shown_on_its_page(acme, bob, settings):
    settings.AUTO_TAG_MIN_SCORE = -1.0  # every label passes
    assert vocabulary_set(tenant=acme, labels=["whiteboard", "cat"], updated_by=bob) is not None
    asset = add(acme, bob, 1)
    asset.refresh_from_db()
    assert asset.status == "ready" and sorted(asset.labels) == ["cat", "whiteboard"]
    assert labelled(acme, "cat") == {str(asset.id)}
    page = login(bob).get(reverse("search:detail", args=["acme", asset.id])).content.decode()
    assert 'id="auto-tags"' in page and ">whiteboard</a>" in page and ">cat</a>" in page
    [answer] = api(bob, acme).get("/api/v1/images/", {"label": "cat"}).json()["results"]
    assert answer["id"] == str(asset.id) and sorted(answer["labels"]) == ["cat", "whiteboard"]
    assert api(bob, acme).get("/api/v1/images/", {"label": "receipt"}).json()["results"] == []
    assert api(bob, acme).get("/api/v1/search/", {"q": "a photo", "label": "receipt"}).json()["results"] == []


def test_a_changed_vocabulary_relabels_and_drops_old_labels_but_keeps_tags(acme, bob, images, settings):
    settings.AUTO_TAG_MIN_SCORE = -1.0
    ImageAsset.objects.filter(id=images[0].id).update(tags=["kept"], tag_index=",kept,")
    vocabulary_set(tenant=acme, labels="receipt, cat", updated_by=bob)
    assert labelled(acme, "receipt") == {str(i.id) for i in images}
    action = vocabulary_set(tenant=acme, labels="cat, dog", updated_by=bob)
    assert action is not None
    action.refresh_from_db()
    assert action.changed == 6
    assert labelled(acme, "receipt") == set() and labelled(acme, "dog") == {str(i.id) for i in images}
    assert {frozenset(a.labels) for a in ImageAsset.objects.all()} == {frozenset({"cat", "dog"})}
    assert ImageAsset.objects.get(id=images[0].id).tags == ["kept"]
    assert vocabulary_set(tenant=acme, labels="Cat, dog", updated_by=bob) is None  # the same, normalised


@pytest.mark.slow  # the background runner
def test_a_large_relabelling_runs_in_the_background_with_its_progress(acme, alice, bob, images, settings, monkeypatch):
    settings.AUTO_TAG_MIN_SCORE = -1.0
    settings.EMBED_RUNNER = "thread"
    monkeypatch.setattr(bulk, "INLINE_MAX", 2)
    monkeypatch.setattr(bulk, "STEP", 2)
    client = login(alice)
    sent = client.post(reverse("ingestion:labels", args=["acme"]), {"labels": "receipt\nwhiteboard"})
    assert sent.status_code == 302
    page = client.get(sent.url).content.decode()
    action = BulkAction.objects.get(kind="relabel")
    assert f'data-action-id="{action.id}"' in page and "Auto-tag again on 6 images" in page
    deadline = time.monotonic() + 30
    while (answer := api(bob, acme).get("/api/v1/labels/").json())["relabel"]["status"] != "done":
        assert time.monotonic() < deadline, "the relabelling did not finish"
        time.sleep(0.1)
    assert answer == {
        "labels": ["receipt", "whiteboard"],
        "min_score": -1.0,
        "relabel": {"id": str(action.id), "status": "done", "total": 6, "processed": 6, "changed": 6},
    }
    assert labelled(acme, "whiteboard") == {str(i.id) for i in images}
    assert AuditEvent.objects.filter(tenant=acme, action="labels.changed").count() == 1


def test_only_owners_and_admins_change_the_vocabulary(acme, alice, bob, vera):
    url = reverse("ingestion:labels", args=["acme"])
    assert login(bob).get(url).status_code == 403
    assert login(bob).post(url, {"labels": "cat"}).status_code == 403
    assert api(vera, acme).get("/api/v1/labels/").json()["labels"] == []  # reading is for every member
    refused = admin_api(bob, acme).put("/api/v1/labels/", {"labels": ["cat"]}, format="json")
    assert refused.status_code == 403 and "owners and admins" in refused.json()["detail"]
    scoped = api(alice, acme).put("/api/v1/labels/", {"labels": ["cat"]}, format="json")
    assert scoped.status_code == 403 and "admin" in scoped.json()["detail"]  # a write key cannot
    assert not LabelVocabulary.objects.exists()
    assert login(alice).post(url, {"labels": "cat"}).status_code == 302
    assert admin_api(alice, acme).put("/api/v1/labels/", {"labels": ["Dog"]}, format="json").json()["labels"] == ["dog"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"labels": "cat"}, "Give a list of words."),
        ({"labels": [f"label {n}" for n in range(51)]}, "At most 50 labels."),
        ({"labels": ["x" * 51]}, "Each label must have 1 to 50 characters."),
        ({"labels": ["a, b"]}, "A label may not contain a comma."),
    ],
)
def test_a_bad_vocabulary_is_a_400_naming_the_field_and_changes_nothing(acme, alice, body, error):
    answer = admin_api(alice, acme).put("/api/v1/labels/", body, format="json")
    assert answer.status_code == 400 and error in " ".join(answer.json()["labels"])
    if isinstance(body["labels"], list) and "comma" not in error:  # the page takes the words as typed
        page = login(alice).post(reverse("ingestion:labels", args=["acme"]), {"labels": ", ".join(body["labels"])})
        assert page.status_code == 400 and error in page.content.decode()
    assert not LabelVocabulary.objects.exists()
