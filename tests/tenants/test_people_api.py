"""The REST API for people work, for keys of owners and admins with the `admin` scope: the same rules
and refusals as the pages (400 naming the field, 403 for a role or scope that may not, 404 for another
tenant's ids, 409 for the last owner), and the invitation mail really goes out."""

from __future__ import annotations

import pytest

from tenants.audit import audit_events_for_tenant
from tenants.models import AuditAction, Invitation, Membership, Role, TokenScope
from tenants.services import membership_set
from tenants.tokens import api_token_create
from tests.conftest import keyed_client
from tests.factories import UserFactory
from tests.tenants.conftest import invitation_link

pytestmark = pytest.mark.django_db


def admin_key(user, tenant, scope: str = TokenScope.ADMIN):
    return keyed_client(api_token_create(tenant=tenant, user=user, name="people", scope=scope)[1])


def member_id(tenant, user) -> int:
    return Membership.objects.get(tenant=tenant, user=user).pk


def test_members_are_listed_with_roles_and_join_dates(acme, alice):
    answer = admin_key(alice, acme).get("/api/v1/members/")
    assert answer.status_code == 200
    rows = {row["username"]: row for row in answer.json()["results"]}
    assert {name: row["role"] for name, row in rows.items()} == {"alice": "owner", "bob": "member", "vera": "viewer"}
    assert rows["bob"]["email"] == "bob@example.com" and rows["bob"]["joined_at"]


def test_a_role_is_changed_and_logged_with_the_key(acme, alice, bob):
    client = admin_key(alice, acme)
    answer = client.patch(f"/api/v1/members/{member_id(acme, bob)}/", {"role": "admin"}, format="json")
    assert answer.status_code == 200 and answer.json()["role"] == "admin"
    [event] = audit_events_for_tenant(acme)
    assert (event.action, event.actor_username, event.api_token_label.startswith("people (")) == (
        AuditAction.MEMBER_ROLE_CHANGED,
        "alice",
        True,
    )


def test_a_bad_role_is_a_400_naming_the_field(acme, alice, bob):
    answer = admin_key(alice, acme).patch(f"/api/v1/members/{member_id(acme, bob)}/", {"role": "king"}, format="json")
    assert answer.status_code == 400 and list(answer.json()) == ["role"]
    assert (
        admin_key(alice, acme).patch(f"/api/v1/members/{member_id(acme, bob)}/", [], format="json").status_code == 400
    )


def test_demoting_the_last_owner_is_a_400_and_removing_them_a_409(acme, alice):
    client = admin_key(alice, acme)
    demoted = client.patch(f"/api/v1/members/{member_id(acme, alice)}/", {"role": "member"}, format="json")
    assert demoted.status_code == 400
    assert demoted.json() == {"role": ["alice is the last owner of Acme: make someone else owner first."]}
    removed = client.delete(f"/api/v1/members/{member_id(acme, alice)}/")
    assert removed.status_code == 409 and "last owner" in removed.json()["detail"]
    assert Membership.objects.get(tenant=acme, user=alice).role == Role.OWNER


def test_an_admin_may_not_make_unmake_or_remove_owners_nor_invite_one(acme, alice, bob, mail_server):
    ada = UserFactory(username="ada")
    membership_set(tenant=acme, user=ada, role=Role.ADMIN)
    client = admin_key(ada, acme)
    assert client.patch(f"/api/v1/members/{member_id(acme, bob)}/", {"role": "owner"}, format="json").status_code == 403
    assert client.patch(f"/api/v1/members/{member_id(acme, alice)}/", {"role": "viewer"}).status_code == 403
    assert client.delete(f"/api/v1/members/{member_id(acme, alice)}/").status_code == 403
    refused = client.post("/api/v1/invitations/", {"email": "boss@example.com", "role": "owner"}, format="json")
    assert refused.status_code == 403 and refused.json() == {"detail": "Only an owner may make or unmake owners."}
    assert client.delete(f"/api/v1/members/{member_id(acme, bob)}/").status_code == 204
    assert mail_server.messages == [] and not Invitation.objects.exists()


@pytest.mark.parametrize(("username", "scope"), [("bob", "admin"), ("vera", "admin"), ("alice", "write")])
def test_keys_of_members_viewers_or_without_the_admin_scope_are_403(acme, username, scope):
    client = admin_key(Membership.objects.get(tenant=acme, user__username=username).user, acme, scope)
    assert client.get("/api/v1/members/").status_code == 403
    assert client.get("/api/v1/invitations/").status_code == 403
    assert client.post("/api/v1/invitations/", {"email": "x@example.com"}, format="json").status_code == 403


def test_a_removed_members_keys_stop_working(acme, alice, bob):
    bobs = keyed_client(api_token_create(tenant=acme, user=bob, name="sync")[1])
    assert admin_key(alice, acme).delete(f"/api/v1/members/{member_id(acme, bob)}/").status_code == 204
    assert bobs.get("/api/v1/images/").status_code == 401


def test_an_invitation_is_created_mailed_listed_and_withdrawn(acme, alice, mail_server):
    client = admin_key(alice, acme)
    made = client.post("/api/v1/invitations/", {"email": "nina@example.com", "role": "viewer"}, format="json")
    assert made.status_code == 201
    body = made.json()
    assert (body["email"], body["role"], body["invited_by"]) == ("nina@example.com", "viewer", "alice")
    [mail] = mail_server.wait_for(1)
    assert mail.recipients == ["nina@example.com"] and invitation_link(mail.text)
    assert [row["id"] for row in client.get("/api/v1/invitations/").json()["results"]] == [body["id"]]
    resent = client.post(f"/api/v1/invitations/{body['id']}/resend/")
    assert resent.status_code == 200 and len(mail_server.wait_for(2)) == 2
    assert client.delete(f"/api/v1/invitations/{body['id']}/").status_code == 204
    assert client.get("/api/v1/invitations/").json()["results"] == []
    assert client.delete(f"/api/v1/invitations/{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "bob@example.com"}, "email"),
        ({"email": "a@b.c", "role": "x"}, "role"),
    ],
)
def test_a_bad_invitation_is_a_400_naming_the_field(acme, alice, mail_server, data, field):
    answer = admin_key(alice, acme).post("/api/v1/invitations/", data, format="json")
    assert answer.status_code == 400 and field in answer.json()
    assert mail_server.messages == []


def test_another_tenants_member_and_invitation_ids_are_404_like_missing_ones(acme, globex, alice, charlie, mail_server):
    admin_key(charlie, globex).post("/api/v1/invitations/", {"email": "g@example.com"}, format="json")
    theirs = Invitation.objects.get(tenant=globex).pk
    client = admin_key(alice, acme)
    for foreign, missing in [
        (f"/api/v1/members/{member_id(globex, charlie)}/", "/api/v1/members/2147480000/"),
        (f"/api/v1/invitations/{theirs}/", "/api/v1/invitations/2147480000/"),
    ]:
        for method, data in [("get", None), ("patch", {"role": "viewer"}), ("delete", None)]:
            got, reference = (getattr(client, method)(path, data, format="json") for path in (foreign, missing))
            assert (got.status_code, got.content) == (reference.status_code, reference.content)
            assert got.status_code in {404, 405}
    assert Membership.objects.get(tenant=globex, user=charlie).role == Role.OWNER
    assert Invitation.objects.filter(pk=theirs).exists()


def test_the_schema_documents_the_people_routes(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/members/{id}/"]) >= {"get", "patch", "delete"}
    assert set(paths["/api/v1/invitations/"]) == {"get", "post"}
    assert {"400", "403", "404"} <= set(paths["/api/v1/members/{id}/"]["patch"]["responses"])
    assert "409" in paths["/api/v1/members/{id}/"]["delete"]["responses"]
    assert {"201", "400", "403", "503"} <= set(paths["/api/v1/invitations/"]["post"]["responses"])
