"""Every upload rides a full batch: however images arrive (one per request, many per post, an
import, a sweep), an embedding task claims its own images and tops the batch up with other pending
ones, in one claim, one forward pass per CLIP_BATCH_SIZE and one index write per tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services import pipeline
from ingestion.services.upload import assets_upload
from tests.factories import image_bytes
from vectors import index
from vectors.embedding import ClipEmbedder


@pytest.fixture
def stored_only(settings):
    """Uploads store their images and leave them pending, as when the worker is busy."""
    settings.EMBED_RUNNER = "thread"  # no background thread runs in the tests: nothing embeds them


def store(tenant, user, *colours):
    files = [SimpleUploadedFile(f"{i}.png", image_bytes("PNG", (64, 48), c)) for i, c in enumerate(colours)]
    return [o.asset for o in assets_upload(tenant=tenant, uploaded_by=user, files=files)]


@pytest.fixture
def calls(monkeypatch):
    """Counts the index writes and forward passes while they run for real."""
    seen: dict[str, Any] = {"upserts": [], "passes": 0}
    upsert, forward = index.upsert_vectors, ClipEmbedder.embed_preprocessed

    def counting_upsert(**kwargs):
        seen["upserts"].append((kwargs["tenant"].vector_key, set(kwargs["ids"])))
        return upsert(**kwargs)

    def counting_forward(self, tensors):
        seen["passes"] += 1
        return forward(self, tensors)

    monkeypatch.setattr(index, "upsert_vectors", counting_upsert)
    monkeypatch.setattr(ClipEmbedder, "embed_preprocessed", counting_forward)
    return seen


def test_a_task_for_one_upload_takes_every_pending_image_in_one_pass_and_one_write_per_tenant(
    stored_only, calls, transactional_db, acme, globex, bob, charlie
):
    ours = [store(acme, bob, (i, 10, 10))[0] for i in range(4)]  # four uploads of one file each
    theirs = store(globex, charlie, (1, 99, 1), (2, 99, 2))
    report = pipeline.assets_embed(asset_ids=[str(ours[0].id)], claim_token="task-1")
    assert set(report.ready) == {str(a.id) for a in ours + theirs}
    assert calls["passes"] == 1
    assert sorted(calls["upserts"]) == sorted(
        [(acme.vector_key, {str(a.id) for a in ours}), (globex.vector_key, {str(a.id) for a in theirs})]
    )
    assert set(ImageAsset.objects.values_list("status", flat=True)) == {AssetStatus.READY}
    # The other uploads' own tasks find their images taken and claim nothing.
    assert pipeline.assets_embed(asset_ids=[str(ours[1].id)], claim_token="task-2").claimed == 0


@pytest.mark.slow  # a forward batch of images embedded
def test_a_batch_is_topped_up_to_the_forward_batch_size_and_no_further(
    stored_only, calls, settings, transactional_db, acme, bob
):
    settings.CLIP_BATCH_SIZE = 3
    assets = store(acme, bob, *[(i, 20, 20) for i in range(5)])
    first = pipeline.assets_embed(asset_ids=[str(assets[-1].id)], claim_token="t")
    assert len(first.ready) == 3 and str(assets[-1].id) in first.ready
    assert ImageAsset.objects.filter(status=AssetStatus.PENDING).count() == 2


def test_images_attempted_before_are_not_topped_up_into_another_batch(stored_only, transactional_db, acme, bob):
    fresh, suspect = store(acme, bob, (1, 2, 3), (4, 5, 6))
    ImageAsset.objects.filter(id=suspect.id).update(status=AssetStatus.PENDING, attempts=1)
    report = pipeline.assets_embed(asset_ids=[str(fresh.id)], claim_token="t")
    assert report.ready == [str(fresh.id)]
    suspect.refresh_from_db()
    assert (suspect.status, suspect.attempts) == (AssetStatus.PENDING, 1)


def test_a_suspect_images_own_task_embeds_it_alone_however_many_uploads_are_pending(
    stored_only, transactional_db, acme, bob
):
    """A suspect (an image whose worker died with it) is deferred to a task of its own. That task
    must not top up with the uploads that keep arriving, or it would defer the suspect again each
    time, and under a steady stream of uploads the suspect would never be tried."""
    suspect, fresh = store(acme, bob, (4, 5, 6), (1, 2, 3))
    ImageAsset.objects.filter(id=suspect.id).update(status=AssetStatus.PENDING, attempts=1)
    report = pipeline.assets_embed(asset_ids=[str(suspect.id)], claim_token="its-own-task")
    assert (report.ready, report.deferred, report.claimed) == ([str(suspect.id)], [], 1)
    suspect.refresh_from_db()
    fresh.refresh_from_db()
    assert (suspect.status, suspect.attempts) == (AssetStatus.READY, 2)
    assert (fresh.status, fresh.attempts) == (AssetStatus.PENDING, 0)  # its own task takes it


def test_a_batch_handed_out_again_after_its_worker_died_tops_up_nothing(stored_only, transactional_db, acme, bob):
    held, fresh = store(acme, bob, (7, 8, 9), (9, 8, 7))
    ImageAsset.objects.filter(id=held.id).update(status=AssetStatus.PROCESSING, attempts=1, claim_token="t")
    report = pipeline.assets_embed(asset_ids=[str(held.id)], claim_token="t")  # the same task, delivered again
    assert (report.claimed, report.ready) == (1, [str(held.id)])
    fresh.refresh_from_db()
    assert (fresh.status, fresh.attempts) == (AssetStatus.PENDING, 0)


def test_the_api_takes_several_files_in_one_request_and_answers_each_in_order(transactional_db, acme, bob):
    from tests.conftest import api

    client = api(bob, acme)
    known = image_bytes("PNG", (64, 48), (9, 9, 9))
    client.post("/api/v1/images/", {"file": SimpleUploadedFile("known.png", known)}, format="multipart")
    files = [
        SimpleUploadedFile("new.png", image_bytes("PNG", (64, 48), (1, 200, 1))),
        SimpleUploadedFile("bad.png", b"<svg/>"),
        SimpleUploadedFile("again.png", known),
    ]
    response = client.post("/api/v1/images/", {"file": files, "tags": "batch"}, format="multipart")
    assert response.status_code == 207
    results = response.json()["results"]
    assert [(r["filename"], r["status"]) for r in results] == [("new.png", 201), ("bad.png", 400), ("again.png", 200)]
    assert results[0]["image"]["tags"] == ["batch"] and results[0]["error"] is None
    assert results[1]["image"] is None and results[1]["error"].startswith("Unsupported file type")
    assert results[2]["image"]["merged"] == ["tags"]
    assert ImageAsset.objects.filter(status=AssetStatus.READY).count() == 2
