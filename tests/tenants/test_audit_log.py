"""The audit log's service and selector: entries carry who, from where and what; a tenant reads its own."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tenants.audit import audit_events_for_tenant, audit_record
from tenants.models import AuditAction
from tenants.tokens import api_token_create
from tests.conftest import keyed_client, login
from tests.factories import image_bytes
from tests.search.conftest import upload_sample

pytestmark = pytest.mark.django_db


def test_an_entry_names_the_user_the_key_and_the_address(acme, bob):
    token, _ = api_token_create(tenant=acme, user=bob, name="sync")
    event = audit_record(
        tenant=acme, api_token=token, action=AuditAction.IMAGES_UPLOADED, detail={"count": 3}, address="10.0.0.1"
    )
    assert (event.actor_user, event.actor_username, event.address) == (bob, "bob", "10.0.0.1")
    assert event.api_token_label.startswith("sync (isk_")
    assert event.detail == {"count": 3}


def test_an_unknown_action_is_refused(acme, alice):
    with pytest.raises(ValueError):
        audit_record(tenant=acme, actor_user=alice, action="images.stolen")


def test_a_key_of_another_tenant_is_refused(acme, globex, charlie):
    token, _ = api_token_create(tenant=globex, user=charlie, name="x")
    with pytest.raises(ValueError):
        audit_record(tenant=acme, api_token=token, action=AuditAction.API_KEY_CREATED)


def test_the_selector_reads_one_tenant_newest_first_filtered_by_person_and_action(acme, globex, alice, bob, charlie):
    audit_record(tenant=acme, actor_user=alice, action=AuditAction.MEMBER_REMOVED, target="x")
    audit_record(tenant=acme, actor_user=bob, action=AuditAction.IMAGE_DELETED, target="a.jpg")
    audit_record(tenant=acme, actor_user=alice, action=AuditAction.IMAGE_DELETED, target="b.jpg")
    audit_record(tenant=globex, actor_user=charlie, action=AuditAction.IMAGE_DELETED, target="secret.jpg")
    assert [e.target for e in audit_events_for_tenant(acme)] == ["b.jpg", "a.jpg", "x"]
    assert [e.target for e in audit_events_for_tenant(acme, actor_user_id=alice.pk)] == ["b.jpg", "x"]
    assert [e.target for e in audit_events_for_tenant(acme, action="image.deleted")] == ["b.jpg", "a.jpg"]
    assert [e.target for e in audit_events_for_tenant(acme, actor_user_id=charlie.pk)] == []


# --- the page, and what the doors record -----------------------------------------------------------

AUDIT_PAGE = "/t/acme/audit/"


def test_owners_and_admins_read_their_log_newest_first_and_nothing_of_another_tenant(acme, globex, alice, bob, charlie):
    audit_record(tenant=acme, actor_user=bob, action=AuditAction.IMAGE_DELETED, target="first.jpg", address="10.0.0.7")
    audit_record(tenant=acme, actor_user=alice, action=AuditAction.MEMBER_REMOVED, target="second")
    audit_record(tenant=globex, actor_user=charlie, action=AuditAction.IMAGE_DELETED, target="globex-secret.jpg")
    page = login(alice).get(AUDIT_PAGE).content.decode()
    assert page.index("second") < page.index("first.jpg")
    assert "10.0.0.7" in page and "Image deleted" in page
    assert "globex-secret" not in page and "charlie" not in page


def test_the_log_is_filtered_by_person_and_action(acme, alice, bob):
    audit_record(tenant=acme, actor_user=bob, action=AuditAction.IMAGE_DELETED, target="bobs.jpg")
    audit_record(tenant=acme, actor_user=alice, action=AuditAction.IMAGE_DELETED, target="alices.jpg")
    audit_record(tenant=acme, actor_user=alice, action=AuditAction.MEMBER_REMOVED, target="someone")
    client = login(alice)
    by_bob = client.get(AUDIT_PAGE, {"person": bob.pk}).content.decode()
    assert "bobs.jpg" in by_bob and "alices.jpg" not in by_bob
    removals = client.get(AUDIT_PAGE, {"action": "member.removed"}).content.decode()
    assert "someone" in removals and ".jpg</td>" not in removals
    assert client.get(AUDIT_PAGE, {"action": "nonsense"}).status_code == 400


def test_members_and_viewers_may_not_read_the_log_and_another_tenant_gets_404(acme, globex, bob, vera, charlie):
    assert login(bob).get(AUDIT_PAGE).status_code == 403
    assert login(vera).get(AUDIT_PAGE).status_code == 403
    assert login(charlie).get(AUDIT_PAGE).status_code == 404


def test_api_uploads_are_logged_with_their_count_and_the_key(acme, bob):
    _, key = api_token_create(tenant=acme, user=bob, name="sync")
    client = keyed_client(key)
    files = [SimpleUploadedFile(f"{n}.png", image_bytes(color=(n, 9, 9))) for n in range(2)]
    files.append(SimpleUploadedFile("bad.png", b"not a picture"))
    assert client.post("/api/v1/images/", {"file": files}, format="multipart").status_code == 207
    [event] = audit_events_for_tenant(acme, action=AuditAction.IMAGES_UPLOADED)
    assert (event.actor_username, event.target) == ("bob", "3 files")
    assert event.detail == {"count": 3, "stored": 2, "duplicates": 0, "refused": 1}
    assert event.api_token_label.startswith("sync (isk_") and event.address == "127.0.0.1"


def test_deletions_through_the_page_and_the_api_are_logged(acme, bob):
    first, second = (upload_sample(acme, bob, name) for name in ("dog.jpg", "cat.png"))
    assert login(bob).post(reverse("search:delete", args=["acme", first.id])).status_code == 302
    _, key = api_token_create(tenant=acme, user=bob, name="sync")
    assert keyed_client(key).delete(f"/api/v1/images/{second.id}/").status_code == 204
    events = list(audit_events_for_tenant(acme, action=AuditAction.IMAGE_DELETED))
    assert [(e.target, e.api_token_id is not None) for e in events] == [("cat.png", True), ("dog.jpg", False)]
    assert events[1].detail == {"image": str(first.id)}


def test_page_uploads_are_logged_with_their_count(acme, bob):
    files = [SimpleUploadedFile("a.png", image_bytes(color=(1, 2, 3))), SimpleUploadedFile("b.txt", b"text")]
    login(bob).post(reverse("ingestion:upload", args=["acme"]), {"images": files})
    [event] = audit_events_for_tenant(acme, action=AuditAction.IMAGES_UPLOADED)
    assert (event.actor_username, event.target, event.api_token_id) == ("bob", "2 files", None)
    assert event.detail == {"count": 2, "stored": 1, "duplicates": 0, "refused": 1}


def test_api_keys_made_and_revoked_on_the_page_in_the_admin_and_by_command_are_logged(acme, alice, bob):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.core.management import call_command

    from tenants.models import ApiToken

    client = login(bob)
    client.post(reverse("tenants:tokens", args=["acme"]), {"name": "sync", "scope": "read"})
    token = ApiToken.objects.get(name="sync")
    client.post(reverse("tenants:token-revoke", args=["acme", token.pk]))
    client.post(reverse("tenants:token-revoke", args=["acme", token.pk]))  # already revoked: once in the log
    call_command("create_api_token", tenant="acme", user="alice", name="cli", stdout=io.StringIO())
    alice.is_staff = alice.is_superuser = True
    alice.save()
    login(alice).post(
        reverse("admin:tenants_apitoken_changelist"),
        {"action": "revoke", ACTION_CHECKBOX_NAME: [ApiToken.objects.get(name="cli").pk]},
    )
    events = [
        (e.action, e.actor_username, e.target.split(" (")[0], e.detail.get("via"))
        for e in audit_events_for_tenant(acme)
    ]
    assert events == [
        (AuditAction.API_KEY_REVOKED, "alice", "cli", "admin"),
        (AuditAction.API_KEY_CREATED, "", "cli", "create_api_token"),
        (AuditAction.API_KEY_REVOKED, "bob", "sync", None),
        (AuditAction.API_KEY_CREATED, "bob", "sync", None),
    ]


def test_operators_see_every_tenants_log_in_the_admin_and_cannot_change_it(acme, globex, alice, charlie):
    from tests.factories import UserFactory

    audit_record(tenant=acme, actor_user=alice, action=AuditAction.MEMBER_REMOVED, target="acme-entry")
    event = audit_record(tenant=globex, actor_user=charlie, action=AuditAction.IMAGE_DELETED, target="globex-entry")
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = login(operator)
    listing = client.get(reverse("admin:tenants_auditevent_changelist")).content.decode()
    assert "acme-entry" in listing and "globex-entry" in listing
    assert client.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:tenants_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:tenants_auditevent_change", args=[event.pk])).status_code == 200  # read only
    assert login(alice).get(reverse("admin:tenants_auditevent_changelist")).status_code == 302  # not staff
