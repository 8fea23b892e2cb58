"""The audit log's service and selector: entries carry who, from where and what; a tenant reads its own."""

from __future__ import annotations

import pytest

from tenants.audit import audit_events_for_tenant, audit_record
from tenants.models import AuditAction
from tenants.tokens import api_token_create

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
