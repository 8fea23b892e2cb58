"""The full stack: the Celery worker process that makes an image ready records its image.ready
event, and a Celery task (the worker's, after that commit) delivers it to a receiver on loopback;
a library action on many images runs as a task on the worker too."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus, BulkAction, ImageAsset
from ingestion.services import bulk
from ingestion.services.bulk import bulk_action_start
from tests.conftest import wait_for_status
from tests.search.conftest import upload_sample
from tests.support.processes import wait_until
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.stack


def test_the_worker_delivers_image_ready_signed_after_embedding(stack, receiver, acme, alice, bob):
    endpoint = endpoint_create(tenant=acme, created_by=alice, url=receiver.url, events=["image.ready"])
    image = upload_sample(acme, bob, "dog.jpg", tags=["dog"])
    wait_for_status(image, {AssetStatus.READY})
    wait_until(lambda: len(receiver.received) == 1, 60, "the worker delivering image.ready")
    [got] = receiver.received
    assert Webhook(endpoint.secret).verify(got.body, got.headers)["data"]["id"] == str(image.id)
    assert got.event["data"]["tags"] == ["dog"]
    wait_until(
        lambda: WebhookDelivery.objects.filter(status="succeeded").count() == 1, 10, "the delivery marked succeeded"
    )


def test_a_large_library_action_runs_as_a_task_on_the_worker(stack, acme, bob, monkeypatch):
    monkeypatch.setattr(bulk, "INLINE_MAX", 1)
    images = [upload_sample(acme, bob, name) for name in ("dog.jpg", "cat.png")]
    for image in images:
        wait_for_status(image, {AssetStatus.READY})
    action, _ = bulk_action_start(
        tenant=acme, created_by=bob, key="big", kind="set_category", value="animals", filters=MetadataFilters()
    )
    wait_until(lambda: BulkAction.objects.get(id=action.id).status == "done", 60, "the worker running the action")
    assert set(ImageAsset.objects.values_list("category", flat=True)) == {"animals"}
