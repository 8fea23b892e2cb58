"""Webhook signing secrets are kept sealed under a key derived from SECRET_KEY: the database alone
(a backup, a replica, a dump) holds none of them in the clear; after a key rotation (the old key in
SECRET_KEY_FALLBACKS) deliveries keep their signatures and `reseal_webhook_secrets` moves them to
the new key; a secret no key opens fails its deliveries with the reason, and nothing else. Endpoints
made before secrets were sealed are sealed by the migration."""

from __future__ import annotations

import base64

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import login
from tests.webhooks.test_webhooks import ALL_EVENTS, admin_key, register, upload
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_send_due
from webhooks.signing import new_secret, unseal

pytestmark = pytest.mark.django_db(transaction=True)

OLD_KEY, NEW_KEY = "the-key-before-the-rotation-" + "x" * 30, "the-key-after-the-rotation-" + "y" * 30


def raw_rows() -> str:
    """Every column of every endpoint row, as PostgreSQL holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(e)::text FROM webhooks_webhookendpoint e")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_database_holds_no_signing_secret_in_the_clear(acme, alice, bob, receiver):
    secret = register(admin_key(alice, acme), receiver.url).json()["secret"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    rows = raw_rows()
    assert secret not in rows and secret.removeprefix("whsec_") not in rows
    assert key.hex() not in rows and base64.urlsafe_b64encode(key).decode() not in rows
    upload(acme, bob, 1)  # image.ready, delivered signed with the secret that was shown
    [got] = receiver.received
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "image.ready"


def test_after_a_key_rotation_deliveries_keep_their_secret_and_are_sealed_again(acme, alice, bob, receiver, settings):
    settings.SECRET_KEY = OLD_KEY
    secret = register(admin_key(alice, acme), receiver.url).json()["secret"]
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    upload(acme, bob, 1)
    [got] = receiver.received
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "image.ready"

    call_command("reseal_webhook_secrets")
    settings.SECRET_KEY_FALLBACKS = []  # the old key dropped: the secret still opens, under the new key alone
    assert WebhookEndpoint.objects.get().secret == secret
    upload(acme, bob, 2)
    assert Webhook(secret).verify(receiver.received[1].body, receiver.received[1].headers)


def test_a_secret_no_key_opens_fails_its_deliveries_with_the_reason_and_nothing_else(
    acme, alice, bob, receiver, settings
):
    settings.SECRET_KEY = OLD_KEY
    client = login(alice)
    client.post(reverse("webhooks:list", args=["acme"]), {"url": receiver.url, "events": ALL_EVENTS})
    endpoint = WebhookEndpoint.objects.get()
    settings.SECRET_KEY = NEW_KEY  # rotated without keeping the old key (the session is signed anew below)
    client = login(alice)
    image = upload(acme, bob, 1)  # the image is stored and embedded; its event waits
    assert receiver.received == []
    assert ImageAsset.objects.get(id=image.id).status == AssetStatus.READY
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.last_error.startswith("This endpoint's signing secret can no longer be read on the server")
    assert client.get(reverse("webhooks:list", args=["acme"])).status_code == 200
    log = client.get(reverse("webhooks:detail", args=["acme", endpoint.id]))
    assert log.status_code == 200 and "can no longer be read" in log.content.decode()  # the reason, in the log
    assert admin_key(alice, acme).get(f"/api/v1/webhooks/{endpoint.id}/deliveries/").status_code == 200
    with pytest.raises(CommandError, match=r"1 secrets open under none of the configured keys.*" + receiver.url):
        call_command("reseal_webhook_secrets")

    settings.SECRET_KEY_FALLBACKS = [OLD_KEY]  # the old key put back: the waiting event goes out
    WebhookDelivery.objects.update(next_attempt_at=delivery.created_at)
    deliveries_send_due()
    assert [r.event["type"] for r in receiver.received] == ["image.ready"]


def test_the_migration_seals_the_secrets_of_endpoints_made_before(acme):
    executor = MigrationExecutor(connection)
    before, after = [("webhooks", "0001_initial")], [("webhooks", "0002_sealed_secret")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("webhooks", "WebhookEndpoint")
    secret = new_secret()
    old.objects.create(tenant_id=acme.id, url="https://hooks.example.com/in", events=ALL_EVENTS, secret=secret)
    try:
        executor.loader.build_graph()
        executor.migrate(after)
        assert secret not in raw_rows()
        assert WebhookEndpoint.objects.get().secret == secret
        assert unseal(WebhookEndpoint.objects.get().sealed_secret) == secret
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
