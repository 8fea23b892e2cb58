"""The members page: owners and admins see who is in, change roles and remove people; only owners
make or unmake owners; the last owner stays; a removed member loses access at once."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tenants.audit import audit_events_for_tenant
from tenants.models import AuditAction, Membership, Role
from tenants.services import membership_set
from tenants.tokens import api_token_create
from tests.conftest import keyed_client, login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def members_url(tenant):
    return reverse("tenants:members", args=[tenant.slug])


def role_url(tenant, user):
    return reverse("tenants:member-role", args=[tenant.slug, Membership.objects.get(tenant=tenant, user=user).pk])


def remove_url(tenant, user):
    return reverse("tenants:member-remove", args=[tenant.slug, Membership.objects.get(tenant=tenant, user=user).pk])


def role_of(tenant, user) -> str | None:
    membership = Membership.objects.filter(tenant=tenant, user=user).first()
    return membership.role if membership else None


@pytest.fixture
def ada(acme):
    """An admin of Acme."""
    ada = UserFactory(username="ada")
    membership_set(tenant=acme, user=ada, role=Role.ADMIN)
    return ada


def test_owners_and_admins_see_who_is_in_with_roles_and_join_dates(acme, alice, ada):
    for user in (alice, ada):
        page = login(user).get(members_url(acme))
        assert page.status_code == 200
        html = page.content.decode()
        for name in ("alice", "bob", "vera", "ada"):
            assert f'data-member="{name}"' in html
        assert Membership.objects.get(tenant=acme, user=alice).created_at.strftime("%Y-%m-%d") in html


@pytest.mark.parametrize("username", ["bob", "vera"])
def test_members_and_viewers_may_not_manage_people(acme, username):
    client = login(Membership.objects.get(tenant=acme, user__username=username).user)
    assert client.get(members_url(acme)).status_code == 403
    assert b"/members/" not in client.get(reverse("ingestion:dashboard", args=[acme.slug])).content


def test_another_tenants_owner_gets_404(acme, globex, charlie):
    assert login(charlie).get(members_url(acme)).status_code == 404


def test_an_owner_changes_a_role_and_the_log_says_so(acme, alice, bob):
    response = login(alice).post(role_url(acme, bob), {"role": "admin"}, follow=True)
    assert "bob is now admin." in response.content.decode()
    assert role_of(acme, bob) == Role.ADMIN
    [event] = audit_events_for_tenant(acme, action=AuditAction.MEMBER_ROLE_CHANGED)
    assert (event.actor_username, event.target, event.detail) == ("alice", "bob", {"from": "member", "to": "admin"})
    assert event.address == "127.0.0.1"


def test_an_owner_makes_and_unmakes_owners(acme, alice, bob):
    client = login(alice)
    client.post(role_url(acme, bob), {"role": "owner"})
    assert role_of(acme, bob) == Role.OWNER
    client.post(role_url(acme, bob), {"role": "viewer"})
    assert role_of(acme, bob) == Role.VIEWER


def test_an_admin_may_neither_make_nor_unmake_nor_remove_owners(acme, alice, bob, ada):
    client = login(ada)
    assert client.post(role_url(acme, bob), {"role": "owner"}).status_code == 403
    assert client.post(role_url(acme, alice), {"role": "member"}).status_code == 403
    assert client.post(remove_url(acme, alice)).status_code == 403
    assert (role_of(acme, bob), role_of(acme, alice)) == (Role.MEMBER, Role.OWNER)
    html = client.get(members_url(acme)).content.decode()
    assert 'value="owner"' not in html  # not offered either
    assert client.post(role_url(acme, bob), {"role": "viewer"}).status_code == 302  # below owner, admins may
    assert role_of(acme, bob) == Role.VIEWER


def test_the_last_owner_can_be_neither_demoted_nor_removed(acme, alice):
    client = login(alice)
    demoted = client.post(role_url(acme, alice), {"role": "admin"}, follow=True)
    assert "alice is the last owner of Acme: make someone else owner first." in demoted.content.decode()
    removed = client.post(remove_url(acme, alice), follow=True)
    assert "alice is the last owner of Acme" in removed.content.decode()
    assert role_of(acme, alice) == Role.OWNER
    assert not audit_events_for_tenant(acme).exists()


def test_with_a_second_owner_the_first_may_step_down(acme, alice, bob):
    client = login(alice)
    client.post(role_url(acme, bob), {"role": "owner"})
    response = client.post(role_url(acme, alice), {"role": "member"})
    assert response.status_code == 302 and response["Location"] == reverse("ingestion:dashboard", args=["acme"])
    assert role_of(acme, alice) == Role.MEMBER
    assert client.get(members_url(acme)).status_code == 403


def test_removing_asks_first_then_removes(acme, alice, bob):
    client = login(alice)
    question = client.get(remove_url(acme, bob))
    assert "Remove bob from Acme?" in question.content.decode()
    assert role_of(acme, bob) == Role.MEMBER
    client.post(remove_url(acme, bob))
    assert role_of(acme, bob) is None
    [event] = audit_events_for_tenant(acme, action=AuditAction.MEMBER_REMOVED)
    assert (event.target, event.detail["role"]) == ("bob", "member")


def test_a_removed_member_loses_pages_and_api_keys_at_once(acme, alice, bob):
    bobs_browser = login(bob)
    _, key = api_token_create(tenant=acme, user=bob, name="sync")
    bobs_api = keyed_client(key)
    assert bobs_browser.get(reverse("ingestion:dashboard", args=["acme"])).status_code == 200
    assert bobs_api.get("/api/v1/images/").status_code == 200

    login(alice).post(remove_url(acme, bob))

    for path in ("/t/acme/", "/t/acme/search/", "/t/acme/upload/", "/t/acme/tokens/"):
        assert bobs_browser.get(path).status_code == 404, path
    assert bobs_api.get("/api/v1/images/").status_code == 401
    # invited back later, the old key stays dead
    membership_set(tenant=acme, user=bob, role=Role.MEMBER)
    assert bobs_api.get("/api/v1/images/").status_code == 401


def test_another_tenants_member_ids_are_404_under_ones_own_tenant(acme, globex, alice, charlie):
    charlies = Membership.objects.get(tenant=globex, user=charlie)
    client = login(alice)
    for name in ("tenants:member-role", "tenants:member-remove"):
        url = reverse(name, args=["acme", charlies.pk])
        assert client.post(url, {"role": "viewer"}).status_code == 404
    assert role_of(globex, charlie) == Role.OWNER


def test_every_post_form_of_the_people_pages_carries_the_csrf_token_and_a_post_without_it_is_refused(
    acme, alice, bob, mail_server
):
    from django.test import Client

    from tenants.models import Invitation
    from tests.tenants.conftest import invitation_link, link_path

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    login(alice).post(reverse("tenants:invite", args=["acme"]), {"email": "nina@example.com", "role": "member"})
    invitation = Invitation.objects.get()
    link = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    pages = [members_url(acme), remove_url(acme, bob), reverse("account"), reverse("password_change")]
    anonymous_pages = [link, reverse("password_reset")]
    forms = []
    for client, urls in ((strict, pages), (Client(enforce_csrf_checks=True), anonymous_pages)):
        for url in urls:
            html = client.get(url).content.decode()
            forms += [(url, form) for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S)]
    assert len(forms) >= 10
    assert [url for url, form in forms if 'name="csrfmiddlewaretoken"' not in form] == []
    posts = {
        role_url(acme, bob): {"role": "admin"},
        remove_url(acme, bob): {},
        reverse("tenants:invite", args=["acme"]): {"email": "x@example.com", "role": "member"},
        reverse("tenants:invitation-resend", args=["acme", invitation.pk]): {},
        reverse("tenants:invitation-withdraw", args=["acme", invitation.pk]): {},
        reverse("password_change"): {"old_password": "x", "new_password1": "y", "new_password2": "y"},
    }
    for url, data in posts.items():
        assert strict.post(url, data).status_code == 403, url
    assert Client(enforce_csrf_checks=True).post(link, {"username": "n"}).status_code == 403
    assert role_of(acme, bob) == Role.MEMBER and Invitation.objects.filter(pk=invitation.pk).exists()
    assert len(mail_server.messages) == 1
