"""Webhooks: owners and admins register endpoints (page and API) and see the secret once; image.ready,
image.failed and image.deleted are delivered signed per Standard Webhooks (checked with the
reference library, `standardwebhooks`), after the commit that caused them, in order per endpoint,
retried with backoff for a day; a receiver that is down loses nothing; non-public addresses are
refused; the delivery log is on the page and in the API. The receiver is a real HTTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ingestion.models import AssetStatus
from ingestion.services import pipeline
from ingestion.services.upload import assets_upload
from tenants.models import AuditEvent, TokenScope
from tenants.tokens import api_token_create
from tests.conftest import keyed_client, login
from tests.factories import image_bytes
from webhooks import services, tasks
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_send_due, endpoint_create, events_emit
from webhooks.signing import new_secret, signature

pytestmark = pytest.mark.django_db(transaction=True)

ALL_EVENTS = ["image.ready", "image.failed", "image.deleted"]


def admin_key(user, tenant, scope=TokenScope.ADMIN):
    return keyed_client(api_token_create(tenant=tenant, user=user, name="hooks", scope=scope)[1])


def register(client, url: str, events=ALL_EVENTS):
    return client.post("/api/v1/webhooks/", {"url": url, "events": events}, format="json")


def upload(tenant, user, n: int):
    file = SimpleUploadedFile(f"pic-{n}.png", image_bytes(color=(n, 60, 120)))
    [outcome] = assets_upload(tenant=tenant, uploaded_by=user, files=[file])
    assert outcome.asset is not None
    return outcome.asset


def due_now() -> None:
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_an_owner_registers_an_endpoint_and_sees_its_secret_once(acme, alice, receiver):
    client = admin_key(alice, acme)
    made = register(client, receiver.url)
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    shown = client.get(f"/api/v1/webhooks/{made.json()['id']}/").json()
    assert "secret" not in shown and shown["events"] == ALL_EVENTS
    assert secret not in client.get("/api/v1/webhooks/").content.decode()
    assert AuditEvent.objects.get(tenant=acme, action="webhook.created").target == receiver.url


def test_only_owners_and_admins_with_an_admin_key_manage_webhooks(acme, alice, bob, receiver):
    refused = register(admin_key(bob, acme), receiver.url)
    assert refused.status_code == 403 and "Only owners and admins" in refused.json()["detail"]
    scoped = register(admin_key(alice, acme, TokenScope.WRITE), receiver.url)
    assert scoped.status_code == 403 and "admin scope" in scoped.json()["detail"]
    assert login(bob).get(reverse("webhooks:list", args=["acme"])).status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_ready_failed_and_deleted_images_are_delivered_signed_per_the_spec(acme, alice, bob, receiver, settings):
    secret = register(admin_key(alice, acme), receiver.url).json()["secret"]
    ready = upload(acme, bob, 1)  # embedded inline: image.ready
    settings.EMBED_RUNNER = "thread"  # the next upload only stores; this test embeds it after damaging it
    broken = upload(acme, bob, 2)
    for name in (broken.file.name, broken.derivative_name(broken.derivative_side)):
        with default_storage.open(name, "wb") as handle:
            handle.write(b"not a picture any more")
    settings.EMBED_RUNNER = "inline"
    pipeline.assets_embed(asset_ids=[str(broken.id)], top_up=False)
    broken.refresh_from_db()
    assert broken.status == AssetStatus.FAILED
    assert admin_key(bob, acme, TokenScope.WRITE).delete(f"/api/v1/images/{ready.id}/").status_code == 204

    events = [r.event for r in receiver.received]
    assert [(e["type"], e["data"]["id"]) for e in events] == [
        ("image.ready", str(ready.id)),
        ("image.failed", str(broken.id)),
        ("image.deleted", str(ready.id)),
    ]
    assert events[1]["data"]["failure_reason"].startswith("The stored file could not be decoded")
    verifier = Webhook(secret)
    for got in receiver.received:
        assert verifier.verify(got.body, got.headers)["type"] == got.event["type"]  # the reference library agrees
        assert got.headers["webhook-id"].startswith("msg_") and got.headers["content-type"] == "application/json"
        assert got.path == "/hooks"
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 3
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}


def test_the_signature_is_the_specs_hmac_of_id_timestamp_and_body():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the example of the spec's reference libraries
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    body = b'{"test": 2432232314}'
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert new_secret() != new_secret()


def test_a_receiver_that_is_down_loses_nothing_and_gets_everything_in_order(acme, alice, bob, receiver):
    endpoint_id = register(admin_key(alice, acme), receiver.url).json()["id"]
    receiver.stop()
    images = [upload(acme, bob, n) for n in range(3)]
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.status for d in deliveries] == ["pending"] * 3
    assert [d.attempts for d in deliveries] == [1, 0, 0]  # the later ones wait behind the first
    assert "Could not connect" in deliveries[0].last_error
    assert deliveries[0].next_attempt_at > timezone.now()
    assert deliveries_send_due() == 0  # nothing is due: the first waits out its backoff

    receiver.mode = "error"
    receiver.start()
    due_now()
    deliveries_send_due()
    first = WebhookDelivery.objects.order_by("id").first()
    assert (first.attempts, first.last_status_code, first.status) == (2, 500, "pending")
    assert [r.event["data"]["id"] for r in receiver.received] == [str(images[0].id)]

    receiver.mode = "ok"
    due_now()
    deliveries_send_due()
    assert [r.event["data"]["id"] for r in receiver.received] == [str(i.id) for i in [images[0], *images]]
    assert list(WebhookDelivery.objects.order_by("id").values_list("status", "attempts")) == [
        ("succeeded", 3), ("succeeded", 1), ("succeeded", 1),
    ]  # fmt: skip
    log = admin_key(alice, acme).get(f"/api/v1/webhooks/{endpoint_id}/deliveries/").json()
    assert log["count"] == 3 and log["results"][-1]["attempts"] == 3


def test_the_retry_waits_grow_and_a_delivery_is_given_up_after_a_day(acme, alice, bob, receiver):
    assert [services.retry_delay(n) for n in (1, 2, 3)] == [5, 30, 120]
    assert services.retry_delay(50) == services.RETRY_DELAYS[-1]
    register(admin_key(alice, acme), receiver.url)
    receiver.mode = "error"
    first, second = upload(acme, bob, 1), upload(acme, bob, 2)
    head = WebhookDelivery.objects.order_by("id").first()
    WebhookDelivery.objects.filter(id=head.id).update(
        created_at=timezone.now() - timedelta(hours=25), next_attempt_at=timezone.now()
    )
    receiver.received.clear()
    deliveries_send_due()  # the first fails once more, a day after its event: given up; the second goes next
    gave_up, waiting = WebhookDelivery.objects.order_by("id")
    assert gave_up.status == "failed" and "Gave up after 2 attempts" in gave_up.last_error
    assert (waiting.status, waiting.attempts) == ("pending", 1)  # tried (and failed) right after
    receiver.mode = "ok"
    due_now()
    deliveries_send_due()
    waiting.refresh_from_db()
    assert waiting.status == "succeeded"
    assert receiver.received[-1].event["data"]["id"] == str(second.id) != str(first.id)


def test_a_slow_receiver_times_out_and_a_redirect_is_not_followed(acme, alice, bob, receiver):
    register(admin_key(alice, acme), receiver.url)
    receiver.mode = "slow"
    upload(acme, bob, 1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "No answer within 1 s" in delivery.last_error
    receiver.mode = "redirect"
    receiver.received.clear()
    due_now()
    deliveries_send_due()
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and "redirects are not followed" in delivery.last_error
    assert [r.path for r in receiver.received] == ["/hooks"]  # /elsewhere was never asked for


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[fd00:ec2::254]/hooks",
        "http://0.0.0.0/hooks",
    ],
)
def test_non_public_addresses_are_refused(acme, alice, url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    refused = register(admin_key(alice, acme), url)
    assert refused.status_code == 400
    assert "public addresses only" in " ".join(refused.json()["url"])
    assert not WebhookEndpoint.objects.exists()


def test_other_urls_are_refused_and_an_unresolvable_name_waits_for_delivery(acme, alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    client = admin_key(alice, acme)
    for url in ("ftp://example.com/x", "http://user:pw@hooks.example.invalid/x", "not a url"):
        assert register(client, url).status_code == 400, url
    assert register(client, "https://hooks.not-yet-there.invalid/x").status_code == 201


def test_an_address_is_checked_again_at_every_delivery(acme, alice, bob, receiver, settings):
    register(admin_key(alice, acme), receiver.url)  # allowed: WEBHOOK_ALLOW_PRIVATE is on here
    settings.WEBHOOK_ALLOW_PRIVATE = False
    upload(acme, bob, 1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "Refused: 127.0.0.1 is a loopback address" in delivery.last_error
    assert receiver.received == []


def test_events_are_recorded_with_the_change_and_sent_only_after_it_commits(
    acme, alice, receiver, settings, monkeypatch
):
    endpoint = endpoint_create(tenant=acme, created_by=alice, url=receiver.url, events=["image.ready"])
    sent: list[str] = []
    monkeypatch.setattr(tasks.deliver_webhooks, "delay", lambda endpoint_id: sent.append(endpoint_id))
    settings.EMBED_RUNNER = "celery"
    with pytest.raises(RuntimeError), transaction.atomic():
        events_emit(tenant=acme, event_type="image.ready", items=[{"id": "rolled back"}])
        raise RuntimeError
    assert not WebhookDelivery.objects.exists() and sent == []
    with transaction.atomic():
        assert events_emit(tenant=acme, event_type="image.ready", items=[{"id": "kept"}]) == 1
        assert events_emit(tenant=acme, event_type="image.deleted", items=[{"id": "not listened to"}]) == 0
        assert sent == []
    assert sent == [str(endpoint.id)]
    assert tasks.send_due_deliveries() == 1 and sent == [str(endpoint.id)] * 2  # the sweep finds it too


def test_a_failed_attempt_brings_the_task_back_after_the_backoff(acme, alice, receiver, settings, monkeypatch):
    endpoint = endpoint_create(tenant=acme, created_by=alice, url=receiver.url, events=["image.ready"])
    settings.EMBED_RUNNER = "celery"
    later: list[tuple] = []
    monkeypatch.setattr(tasks.deliver_webhooks, "delay", lambda endpoint_id: None)
    monkeypatch.setattr(tasks.deliver_webhooks, "apply_async", lambda args, countdown: later.append((args, countdown)))
    receiver.mode = "error"
    with transaction.atomic():
        events_emit(tenant=acme, event_type="image.ready", items=[{"id": "x"}])
    assert tasks.deliver_webhooks(str(endpoint.id)) == 5
    assert later == [((str(endpoint.id),), 5)]


def test_a_paused_endpoint_keeps_its_deliveries_until_it_resumes(acme, alice, bob, receiver):
    client = login(alice)
    endpoint = endpoint_create(tenant=acme, created_by=alice, url=receiver.url, events=["image.deleted"])
    image = upload(acme, bob, 1)
    client.post(reverse("webhooks:toggle", args=["acme", endpoint.id]))
    with transaction.atomic():
        events_emit(tenant=acme, event_type="image.deleted", items=[{"id": "while paused"}])
    assert receiver.received == [] and WebhookDelivery.objects.count() == 0  # paused: nothing recorded
    endpoint.refresh_from_db()
    assert endpoint.is_active is False
    client.post(reverse("webhooks:toggle", args=["acme", endpoint.id]))
    admin_key(bob, acme, TokenScope.WRITE).delete(f"/api/v1/images/{image.id}/")
    assert [r.event["data"]["id"] for r in receiver.received] == [str(image.id)]


def test_the_pages_register_show_the_secret_once_and_the_delivery_log(acme, alice, bob, receiver):
    client = login(alice)
    made = client.post(reverse("webhooks:list", args=["acme"]), {"url": receiver.url, "events": ["image.ready"]})
    endpoint = WebhookEndpoint.objects.get()
    assert made["Location"] == reverse("webhooks:detail", args=["acme", endpoint.id])
    assert endpoint.secret not in str(dict(client.session))  # the session says only which page may show it
    first = client.get(made["Location"])
    assert endpoint.secret in first.content.decode() and "no-store" in first["Cache-Control"]
    upload(acme, bob, 1)
    again = client.get(made["Location"]).content.decode()
    assert endpoint.secret not in again
    assert "image.ready" in again and 'data-status="succeeded"' in again
    refused = client.post(reverse("webhooks:list", args=["acme"]), {"url": "http://x.invalid/", "events": []})
    assert refused.status_code == 400 and "Choose an event." in refused.content.decode()
    client.post(reverse("webhooks:delete", args=["acme", endpoint.id]))
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(tenant=acme, action="webhook.deleted").count() == 1


def test_another_tenants_webhooks_and_logs_are_404(acme, globex, alice, charlie, receiver):
    endpoint = endpoint_create(tenant=acme, created_by=alice, url=receiver.url, events=ALL_EVENTS)
    other = admin_key(charlie, globex)
    for path in (f"/api/v1/webhooks/{endpoint.id}/", f"/api/v1/webhooks/{endpoint.id}/deliveries/"):
        assert other.get(path).json() == {"detail": "Not found."}
    assert other.delete(f"/api/v1/webhooks/{endpoint.id}/").status_code == 404
    assert (
        other.patch(f"/api/v1/webhooks/{endpoint.id}/", {"url": "http://x.invalid/"}, format="json").status_code == 404
    )
    assert other.get("/api/v1/webhooks/").json() == []
    page = login(charlie)
    assert page.get(reverse("webhooks:detail", args=["globex", endpoint.id])).status_code == 404
    assert page.get(reverse("webhooks:detail", args=["acme", endpoint.id])).status_code == 404
    assert WebhookEndpoint.objects.filter(id=endpoint.id).exists()


def test_patch_changes_an_endpoint_with_the_same_rules(acme, alice, receiver, settings):
    client = admin_key(alice, acme)
    endpoint_id = register(client, receiver.url).json()["id"]
    changed = client.patch(f"/api/v1/webhooks/{endpoint_id}/", {"events": ["image.deleted"]}, format="json")
    assert changed.status_code == 200 and changed.json()["events"] == ["image.deleted"]
    assert changed.json()["url"] == receiver.url
    settings.WEBHOOK_ALLOW_PRIVATE = False
    refused = client.patch(f"/api/v1/webhooks/{endpoint_id}/", {"url": "http://10.0.0.1/"}, format="json")
    assert refused.status_code == 400
    bad = client.patch(f"/api/v1/webhooks/{endpoint_id}/", {"events": ["image.stolen"]}, format="json")
    assert bad.status_code == 400 and "events" in bad.json()
