"""The full local stack: uploads through the page are embedded by a real Celery worker process
(Redis broker, PostgreSQL) into a real Chroma server."""

from __future__ import annotations

import socket

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.celery import QUEUE_INGESTION, app
from ingestion.models import AssetStatus, ImageAsset
from ingestion.tasks import embed_assets
from tests.conftest import api, login, wait_for_status
from tests.factories import image_bytes
from vectors import index

pytestmark = pytest.mark.stack


def upload(client, tenant, *files):
    response = client.post(
        reverse("ingestion:upload", args=[tenant.slug]), {"images": list(files)}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 201, response.content
    return [ImageAsset.objects.get(id=r["image"]["id"]) for r in response.json()["results"]]


def test_the_worker_embeds_an_upload_into_the_chroma_server_with_its_tenant(stack, acme, globex, bob, sample):
    [dog, person] = upload(login(bob), acme, sample("dog.jpg"), sample("dog-with-person.jpg"))
    for asset in (dog, person):
        wait_for_status(asset, {AssetStatus.READY})
    metadata = index.fetch_metadata(tenant=acme, ids=[str(dog.id), str(person.id)])
    assert {meta["tenant"] for meta in metadata.values()} == {acme.vector_key}
    assert index.fetch_metadata(tenant=globex, ids=[str(dog.id)]) == {}
    [hit, *_] = index.query_vectors(
        tenant=acme, embedding=index.fetch_vectors(tenant=acme, ids=[str(dog.id)])[str(dog.id)], limit=2
    )
    assert hit.id == str(dog.id) and hit.distance == pytest.approx(0, abs=1e-4)


def test_running_the_task_again_creates_no_duplicate(stack, acme, bob, sample):
    [asset] = upload(login(bob), acme, sample("dog.jpg"))
    wait_for_status(asset, {AssetStatus.READY})
    ImageAsset.objects.filter(id=asset.id).update(status=AssetStatus.PENDING)
    embed_assets.delay([str(asset.id)])
    embed_assets.delay([str(asset.id)])
    wait_for_status(asset, {AssetStatus.READY})
    assert index.count_vectors(tenant=acme) == 1


def test_chroma_down_then_back_the_task_retries_and_completes(stack, acme, bob, sample):
    stack.stop()
    try:
        [asset] = upload(login(bob), acme, sample("cat.png"))
        asset.refresh_from_db()
        assert asset.status in {AssetStatus.PENDING, AssetStatus.PROCESSING}
    finally:
        stack.start()
    wait_for_status(asset, {AssetStatus.READY}, timeout=90)
    assert asset.failure_reason == ""
    assert index.count_vectors(tenant=acme) == 1


def test_uploads_one_per_request_while_a_task_waits_queue_no_more_tasks_and_ride_full_batches(
    stack, celery_worker_process, acme, bob
):
    """An integration uploading one file per request, while the worker is busy: the first upload
    queues a task, the others find it waiting and queue none; that task claims a full forward batch
    and queues one more for the rest. 34 uploads cost two claims, not 34."""
    worker = [celery_worker_process.hostname.replace("%h", socket.gethostname())]
    batch = int(celery_worker_process.env.get("CLIP_BATCH_SIZE") or 0) or 32  # the worker's forward batch on a CPU
    broker = redis.Redis.from_url(settings.REDIS_URL)
    assert app.control.cancel_consumer(QUEUE_INGESTION, destination=worker, reply=True, timeout=10)
    try:
        client = api(bob, acme)
        for i in range(batch + 2):  # well within the flag's 30 s
            file = SimpleUploadedFile(f"{i}.png", image_bytes("PNG", (64, 48), (i * 7 % 256, 40, 200 - i)))
            assert client.post("/api/v1/images/", {"file": file}, format="multipart").status_code == 201
        queued = broker.llen(QUEUE_INGESTION)
    finally:
        resumed = app.control.add_consumer(QUEUE_INGESTION, destination=worker, reply=True, timeout=10)
    assert resumed and queued == 1
    images = list(ImageAsset.objects.filter(tenant=acme))
    for image in images:
        wait_for_status(image, {AssetStatus.READY})
    claims = sorted(ImageAsset.objects.filter(tenant=acme).values_list("claim_token", flat=True))
    assert sorted(claims.count(token) for token in set(claims)) == [2, batch]
    assert index.count_vectors(tenant=acme) == batch + 2
