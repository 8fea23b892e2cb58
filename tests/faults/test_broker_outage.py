"""Redis down during uploads: they are accepted, through the page and the API, without hanging, and
become ready once it is back (empty, as after a crash) by the periodic sweep."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from ingestion.models import AssetStatus, ImageAsset
from tenants.tokens import api_token_create
from tests.conftest import login
from tests.faults.harness import WAIT, ids, picture, wait_until_final
from vectors import index

pytestmark = pytest.mark.stack


def within(seconds: float, call):
    """call() in a thread, failing if it has not returned after `seconds` (a hang, not a slow answer)."""
    outcome: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if errors:
        raise errors[0]
    return outcome[0]


def upload_page(client, tenant, *files) -> list[tuple[int, dict]]:
    response = client.post(
        reverse("ingestion:upload", args=[tenant.slug]), {"images": list(files)}, HTTP_ACCEPT="application/json"
    )
    if response.status_code != 201:
        return [(response.status_code, {})]
    return [(201, result["image"]) for result in response.json()["results"]]


def upload_api(client, tenant, *files) -> list[tuple[int, dict]]:
    responses = [client.post(reverse("api:image-list"), {"file": file}) for file in files]
    return [(r.status_code, r.json() if r.status_code == 201 else {}) for r in responses]


@pytest.mark.parametrize(
    "door",
    [
        "page",
        "api",
    ],
)
def test_uploads_while_redis_is_down_are_accepted_and_become_ready_once_it_is_back(
    faults, settings, acme, bob, caplog, door
):
    # As deployed, Redis is the cache as well as the broker.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": faults.redis.url}
    }
    if door == "page":
        client, send = login(bob), upload_page
    else:
        _, key = api_token_create(tenant=acme, user=bob, name="faults")
        client, send = Client(HTTP_AUTHORIZATION=f"Token {key}", raise_request_exception=False), upload_api
    faults.redis.stop()
    try:
        answers = within(WAIT, lambda: send(client, acme, picture(11), picture(12)))
    finally:
        faults.redis.start()  # empty: what it held is gone, as after a crash without persistence
    assert [code for code, _ in answers] == [201, 201]
    assert [image["status"] for _, image in answers] == ["pending", "pending"]
    assert "the sweep will queue them later" in caplog.text
    assets = [ImageAsset.objects.get(id=image["id"]) for _, image in answers]

    with faults.beat():
        wait_until_final(assets)
    assert [a.status for a in assets] == [AssetStatus.READY] * 2
    assert index.vector_ids(tenant=acme) == ids(assets)
    assert [a.attempts for a in assets] == [1, 1]
