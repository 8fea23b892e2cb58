from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.pipeline import assets_embed
from ingestion.services.requeue import assets_requeue_stale
from ingestion.services.upload import assets_upload
from tests.factories import image_bytes
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def upload(tenant, user, *colors):
    files = [SimpleUploadedFile(f"{i}.png", image_bytes("PNG", color=c)) for i, c in enumerate(colors)]
    return [o.asset for o in assets_upload(tenant=tenant, uploaded_by=user, files=files)]


@pytest.fixture
def queued(settings, acme, bob):
    """Images stored but not yet embedded: as if the broker had not delivered the task yet."""
    settings.CELERY_TASK_ALWAYS_EAGER = True

    def make(*colors):
        from config.celery import app

        app.conf.task_always_eager = True
        # Uploaded first, then all put back: an upload's task tops its batch up with pending images.
        assets = [upload(acme, bob, color)[0] for color in colors]
        for asset in assets:
            ImageAsset.objects.filter(id=asset.id).update(status=AssetStatus.PENDING, embedded_at=None, attempts=0)
            index.delete_vectors(tenant=acme, ids=[str(asset.id)])
            asset.refresh_from_db()
        return assets

    return make


def test_an_undecodable_stored_file_fails_alone_with_a_reason(acme, queued):
    good, broken = queued((1, 1, 1), (2, 2, 2))
    for name in (broken.file.name, broken.derivative_name(broken.derivative_side)):  # every copy the worker reads
        with default_storage.open(name, "wb") as handle:
            handle.write(b"\x89PNG\r\n\x1a\n garbage")
    report = assets_embed(asset_ids=[str(good.id), str(broken.id)])
    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.status == AssetStatus.READY
    assert broken.status == AssetStatus.FAILED
    assert broken.failure_reason.startswith("The stored file could not be decoded")
    assert report.failed == [str(broken.id)]
    assert index.count_vectors(tenant=acme) == 1


def test_ready_images_are_not_embedded_again(acme, queued):
    [asset] = queued((3, 3, 3))
    assert assets_embed(asset_ids=[str(asset.id)]).ready == [str(asset.id)]
    assert assets_embed(asset_ids=[str(asset.id)]).ready == []
    assert index.count_vectors(tenant=acme) == 1


def test_an_image_that_kept_crashing_its_worker_ends_failed(acme, queued, settings):
    [asset] = queued((4, 4, 4))
    ImageAsset.objects.filter(id=asset.id).update(
        status=AssetStatus.PROCESSING, attempts=settings.EMBED_MAX_ATTEMPTS, claim_token="task-1"
    )
    assets_embed(asset_ids=[str(asset.id)], claim_token="task-1")  # its task, delivered again
    asset.refresh_from_db()
    assert asset.status == AssetStatus.FAILED
    assert f"Gave up after {settings.EMBED_MAX_ATTEMPTS} attempts" in asset.failure_reason


def test_a_suspect_image_is_split_off_so_it_cannot_hold_back_its_batch(acme, queued):
    fresh, suspect = queued((5, 5, 5), (6, 6, 6))
    ImageAsset.objects.filter(id=suspect.id).update(status=AssetStatus.PROCESSING, attempts=1, claim_token="task-1")
    report = assets_embed(asset_ids=[str(fresh.id), str(suspect.id)], claim_token="task-1")
    assert report.deferred == [str(suspect.id)]
    assert str(fresh.id) in report.ready
    suspect.refresh_from_db()
    assert suspect.status == AssetStatus.READY  # embedded by its own task (in-process here)
    assert suspect.attempts == 2


def test_the_sweep_requeues_images_left_pending(acme, queued, settings):
    [asset] = queued((7, 7, 7))
    settings.EMBED_STALE_AFTER_SECONDS = 10
    ImageAsset.objects.filter(id=asset.id).update(updated_at=asset.updated_at.replace(year=2000))
    assert assets_requeue_stale() == 1
    asset.refresh_from_db()
    assert asset.status == AssetStatus.READY


def test_an_upload_in_progress_for_the_same_tenant_does_not_hide_pending_images_from_the_worker(queued, acme):
    """An upload holds its tenant's row locked while it stores files (the quota check); the worker's
    claim must lock only the image rows, or it skips every image of a tenant that is uploading."""
    import threading

    from django.db import connections, transaction

    from tenants.models import Tenant

    [asset] = queued("red")
    locked, release = threading.Event(), threading.Event()

    def upload_in_progress() -> None:
        try:
            with transaction.atomic():
                Tenant.objects.select_for_update().get(pk=acme.pk)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=upload_in_progress)
    holder.start()
    try:
        assert locked.wait(10)
        report = assets_embed(asset_ids=[str(asset.id)])
    finally:
        release.set()
        holder.join()
    assert report.ready == [str(asset.id)]
    asset.refresh_from_db()
    assert asset.status == AssetStatus.READY
