"""The single-process default's background embedder: an upload returns as soon as its files are
stored, the page sees each image go pending → ready, and nothing is ever left processing."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ingestion import background
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.pipeline import assets_embed_next_batch, assets_requeue_interrupted
from ingestion.services.upload import assets_upload
from search.services import search_by_text
from tests.conftest import login
from tests.factories import image_bytes
from tests.support.processes import wait_until
from tests.testenv import ROOT
from vectors import index
from vectors.embedding import EmbeddingModelUnavailable


@pytest.fixture
def thread_runner(settings, transactional_db):
    settings.EMBED_RUNNER = "thread"
    settings.EMBED_POLL_SECONDS = 0.2
    yield
    background.stop()


@pytest.mark.slow  # the background embedder, a model of its own
def test_an_upload_returns_pending_and_the_background_embedder_makes_it_searchable(thread_runner, acme, bob):
    response = login(bob).post(
        reverse("ingestion:upload", args=[acme.slug]),
        {"images": SimpleUploadedFile("a.png", image_bytes("PNG")), "tags": "beach"},
        HTTP_ACCEPT="application/json",
    )
    [row] = response.json()["results"]
    assert response.status_code == 201
    assert row["image"]["status"] == "pending"
    assert row["image"]["detail"] == "Stored; waiting for the embedder to take it."
    asset = ImageAsset.objects.get(id=row["image"]["id"])

    assert background.start()

    def ready() -> bool:
        asset.refresh_from_db()
        return asset.status == AssetStatus.READY

    wait_until(ready, 60, "the background embedder")
    assert [r.asset.id for r in search_by_text(tenant=acme, text="a photo", limit=5)] == [asset.id]


def test_weights_that_cannot_be_loaded_leave_images_pending_not_processing(settings, transactional_db, acme, bob):
    settings.EMBED_RUNNER = "thread"  # stored, not embedded in the request
    [outcome] = assets_upload(tenant=acme, uploaded_by=bob, files=[SimpleUploadedFile("a.png", image_bytes("PNG"))])
    settings.CLIP_PRETRAINED = "/nowhere/weights.pt"
    with pytest.raises(EmbeddingModelUnavailable, match="CLIP_PRETRAINED"):
        assets_embed_next_batch()
    outcome.asset.refresh_from_db()
    assert (outcome.asset.status, outcome.asset.attempts) == (AssetStatus.PENDING, 0)


def test_images_a_previous_run_left_processing_are_pending_again_at_start(settings, db, acme, bob):
    settings.EMBED_RUNNER = "thread"
    [outcome] = assets_upload(tenant=acme, uploaded_by=bob, files=[SimpleUploadedFile("a.png", image_bytes("PNG"))])
    ImageAsset.objects.filter(id=outcome.asset.id).update(status=AssetStatus.PROCESSING, attempts=1)
    assert assets_requeue_interrupted() == 1
    outcome.asset.refresh_from_db()
    assert (outcome.asset.status, outcome.asset.attempts) == (AssetStatus.PENDING, 1)


@pytest.mark.slow  # a second Python process
def test_a_second_process_cannot_open_the_embedded_index_while_one_holds_it(settings, db):
    settings.CHROMA_URL = ""
    index.reset_connection()
    index.check_available()  # this process holds the directory now
    probe = (
        "import django; django.setup(); from vectors import index\n"
        "try:\n    index.check_available()\nexcept index.IndexLocked as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATA_DIR": str(settings.DATA_DIR), "CHROMA_PATH": str(settings.CHROMA_PATH)},
    )
    assert "is in use by process" in result.stdout, result.stderr
    assert "CHROMA_URL" in result.stdout


def test_an_import_whose_embedding_failed_is_queued_again_by_the_next_import(
    settings, transactional_db, acme, tmp_path
):
    """ "Already indexed" means searchable: a first import whose weights could not be loaded leaves its
    images pending, and the next import embeds them instead of calling them done."""
    from django.core.management import CommandError, call_command

    settings.EMBED_RUNNER = "thread"  # as `make run`'s commands run: no worker, the command embeds
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(image_bytes("PNG"))
    weights = settings.CLIP_PRETRAINED
    settings.CLIP_PRETRAINED = "/nowhere/weights.pt"
    with pytest.raises(CommandError, match="stay pending until this is fixed"):
        call_command("import_images", str(folder), "--tenant", acme.slug, verbosity=0)
    [asset] = ImageAsset.objects.all()
    assert asset.status == AssetStatus.PENDING
    settings.CLIP_PRETRAINED = weights
    out = io.StringIO()
    call_command("import_images", str(folder), "--tenant", acme.slug, verbosity=0, stdout=out)
    assert "skipped 0 already indexed; queued 1 again that were not searchable yet" in out.getvalue()
    asset.refresh_from_db()
    assert asset.status == AssetStatus.READY
