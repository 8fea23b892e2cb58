"""Acting on many images from the library: chosen ones or every image matching a filter; delete,
tags, category, source, re-queue; large actions in the background with their progress; an action
sent twice, or interrupted and run again, changes each image once."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus, BulkAction, ImageAsset
from ingestion.services import bulk
from ingestion.services.bulk import bulk_action_run, bulk_action_start
from search.services import search_by_text
from tenants.models import AuditEvent
from tests.conftest import login
from tests.ingestion.test_library import add
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def images(acme, bob):
    return [add(acme, bob, n, tags=["old"], category="misc") for n in range(5)]


def act(client, tenant="acme", **data):
    data.setdefault("key", uuid.uuid4().hex)
    data.setdefault("scope", "selected")
    return client.post(reverse("ingestion:bulk-action", args=[tenant]), data)


def tagged(tenant, tag: str) -> set[str]:
    hits = search_by_text(tenant=tenant, text="a photo", limit=50, filters=MetadataFilters(tags=(tag,)))
    return {str(hit.asset.id) for hit in hits}


def test_adding_tags_to_the_chosen_images_reaches_the_index_and_sending_it_twice_is_one_action(acme, bob, images):
    client = login(bob)
    chosen = [str(i.id) for i in images[:3]]
    sent = act(client, action="add_tags", action_tags="Summer, beach", ids=chosen, key="form-1")
    assert sent.status_code == 302
    assert tagged(acme, "summer") == set(chosen) == tagged(acme, "beach")
    again = act(client, action="add_tags", action_tags="summer, beach", ids=chosen, key="form-1")
    assert again.status_code == 302 and BulkAction.objects.count() == 1
    action = BulkAction.objects.get()
    assert (action.status, action.total, action.processed, action.changed) == ("done", 3, 3, 3)
    repeated = act(client, action="add_tags", action_tags="summer, beach", ids=chosen)  # a new form: no change
    assert BulkAction.objects.order_by("-created_at").first().changed == 0 and repeated.status_code == 302
    assert {tuple(i.tags) for i in ImageAsset.objects.filter(id__in=chosen)} == {("old", "summer", "beach")}
    assert AuditEvent.objects.filter(tenant=acme, action="image.edited").count() == 2


def test_removing_tags_setting_category_and_source(acme, bob, images):
    client = login(bob)
    ids = [str(i.id) for i in images]
    act(client, action="remove_tags", action_tags="old", ids=ids[:2])
    act(client, action="set_category", action_value="holiday", ids=ids[:2])
    act(client, action="set_source", action_value="phone", ids=ids[1:2])
    assert tagged(acme, "old") == set(ids[2:])
    hits = search_by_text(tenant=acme, text="x", limit=50, filters=MetadataFilters(category="holiday", source="phone"))
    assert {str(h.asset.id) for h in hits} == {ids[1]}
    assert ImageAsset.objects.get(id=ids[0]).category == "holiday"


def test_deleting_the_chosen_images_removes_rows_vectors_and_files(acme, bob, images):
    files = [images[0].file.name, images[0].thumbnail.name]
    act(login(bob), action="delete", ids=[str(images[0].id), str(images[1].id)])
    assert ImageAsset.objects.count() == 3
    assert index.vector_ids(tenant=acme) == {str(i.id) for i in images[2:]}
    assert not any(default_storage.exists(name) for name in files)
    assert AuditEvent.objects.get(tenant=acme, action="image.deleted").detail["images"] == 2


def test_members_may_not_delete_in_bulk_when_their_role_may_not(acme, vera, images):
    assert act(login(vera), action="add_tags", action_tags="x", ids=[str(images[0].id)]).status_code == 403


def test_requeue_takes_only_the_failed_images(acme, bob, images):
    ImageAsset.objects.filter(id=images[0].id).update(status=AssetStatus.FAILED, failure_reason="x")
    act(login(bob), action="requeue", scope="filter")
    action = BulkAction.objects.get()
    assert (action.total, action.changed) == (1, 1)
    assert ImageAsset.objects.get(id=images[0].id).status == AssetStatus.READY  # embedded again, inline


def test_every_image_matching_the_filter_and_none_uploaded_after(acme, bob, images):
    ImageAsset.objects.filter(id=images[0].id).update(category="other")
    act(login(bob), action="add_tags", action_tags="keep", scope="filter", **{"f-category": "misc"})
    assert tagged(acme, "keep") == {str(i.id) for i in images[1:]}
    action = BulkAction.objects.get()
    late = add(acme, bob, 99, category="misc")
    assert late.created_at > action.cutoff
    bulk_action_run(action_id=action.id)  # run again: the image uploaded afterwards is not taken
    assert "keep" not in ImageAsset.objects.get(id=late.id).tags


def test_nothing_selected_or_bad_tags_are_refused_with_the_reason(acme, bob, images):
    client = login(bob)
    none = act(client, action="delete")
    assert none.status_code == 400 and "Select at least one image" in none.content.decode()
    bad = act(client, action="add_tags", action_tags="x" * 51, ids=[str(images[0].id)])
    assert bad.status_code == 400 and "1 to 50 characters" in bad.content.decode()
    assert not BulkAction.objects.exists() and ImageAsset.objects.count() == 5


@pytest.mark.slow  # a large action
def test_a_large_action_runs_in_the_background_with_its_progress(acme, bob, images, settings, monkeypatch):
    settings.EMBED_RUNNER = "thread"
    monkeypatch.setattr(bulk, "INLINE_MAX", 2)
    monkeypatch.setattr(bulk, "STEP", 2)
    client = login(bob)
    sent = act(client, action="add_tags", action_tags="later", scope="filter")
    assert sent.status_code == 302
    action = BulkAction.objects.get()
    status_url = reverse("ingestion:bulk-action-status", args=["acme", action.id])
    deadline = time.monotonic() + 30
    while not client.get(status_url).json()["final"]:
        assert time.monotonic() < deadline, "the background action did not finish"
        time.sleep(0.1)
    progress = client.get(status_url).json()
    assert (progress["status"], progress["processed"], progress["total"], progress["percent"]) == ("done", 5, 5, 100)
    assert tagged(acme, "later") == {str(i.id) for i in images}
    page = client.get(reverse("ingestion:library", args=["acme"])).content.decode()
    assert f'data-action-id="{action.id}"' in page and "Add #later on 5 images" in page


def test_an_interrupted_action_run_again_changes_each_image_once(acme, bob, images, monkeypatch):
    monkeypatch.setattr(bulk, "STEP", 2)
    real_step, calls = bulk._run_step, list[int]()

    def dies_after_one_step(action, step):
        if calls:
            raise SystemError("worker killed")
        calls.append(1)
        real_step(action, step)

    monkeypatch.setattr(bulk, "_run_step", dies_after_one_step)
    with pytest.raises(SystemError):
        bulk_action_start(
            tenant=acme, created_by=bob, key="k", kind="add_tags", tags=["once"], filters=MetadataFilters()
        )
    action = BulkAction.objects.get()
    assert (action.status, action.processed) == ("running", 2)
    assert bulk_action_run(action_id=action.id) is None  # still running elsewhere, as far as anyone knows
    monkeypatch.setattr(bulk, "_run_step", real_step)
    BulkAction.objects.filter(id=action.id).update(updated_at=action.updated_at - bulk.STALE_AFTER * 2)
    assert bulk.bulk_actions_resume() == 1  # the sweep takes it up again (a thread here, joined below)
    deadline = time.monotonic() + 30
    while BulkAction.objects.get(id=action.id).status != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    action.refresh_from_db()
    assert (action.processed, action.changed) == (5, 5)
    assert all(ImageAsset.objects.get(id=i.id).tags == ["old", "once"] for i in images)


def test_the_index_out_of_reach_stops_a_small_action_with_the_reason(acme, bob, images, monkeypatch):
    def down(**kwargs):
        raise index.IndexUnavailable("Chroma update failed: connection refused")

    monkeypatch.setattr(index, "update_metadata", down)
    act(login(bob), action="add_tags", action_tags="x", ids=[str(images[0].id)])
    action = BulkAction.objects.get()
    assert action.status == "failed" and "connection refused" in action.errors[-1]
    assert ImageAsset.objects.get(id=images[0].id).tags == ["old"]


def test_another_tenants_action_progress_is_a_404(acme, globex, bob, charlie, images):
    act(login(bob), action="add_tags", action_tags="x", ids=[str(images[0].id)])
    action = BulkAction.objects.get()
    assert login(charlie).get(reverse("ingestion:bulk-action-status", args=["acme", action.id])).status_code == 404
    own_slug = reverse("ingestion:bulk-action-status", args=["globex", action.id])
    assert login(charlie).get(own_slug).status_code == 404
