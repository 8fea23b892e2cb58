"""Invitations by e-mail, delivered to a real SMTP server on loopback: the link works once, within
INVITATION_MAX_AGE_DAYS, for the invited e-mail only; a new person signs up, someone with an account
logs in; pending ones are re-sent (a new link) and withdrawn."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tenants.audit import audit_events_for_tenant
from tenants.models import AuditAction, Invitation, Membership, Role
from tests.conftest import login
from tests.factories import PASSWORD, UserFactory
from tests.tenants.conftest import invitation_link, link_path

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long and unusual passphrase 42"


def invite(client, email: str, role: str = "member", tenant: str = "acme"):
    return client.post(reverse("tenants:invite", args=[tenant]), {"email": email, "role": role}, follow=True)


def sign_up(path: str, username: str = "nina"):
    client = Client()
    response = client.post(path, {"username": username, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    return client, response


def test_an_owner_invites_and_a_new_person_signs_up_and_lands_in_the_tenant(acme, alice, mail_server):
    page = invite(login(alice), "Nina@Example.COM", "member")
    assert "Invitation sent to Nina@example.com." in page.content.decode()
    [mail] = mail_server.wait_for(1)
    assert mail.recipients == ["Nina@example.com"]
    assert mail.message["Subject"] == "alice invites you to Acme on Image search"
    link = invitation_link(mail.text)
    assert link.startswith("http://testserver/accounts/invitations/")

    anonymous = Client().get(link_path(link))
    assert anonymous.status_code == 200 and "Acme" not in anonymous.content.decode()  # named once used
    client, response = sign_up(link_path(link))
    assert response.status_code == 302 and response["Location"] == "/t/acme/"
    nina = User.objects.get(username="nina")
    assert nina.email == "Nina@example.com" and nina.check_password(NEW_PASSWORD)
    assert Membership.objects.get(tenant=acme, user=nina).role == Role.MEMBER
    assert "Welcome to Acme: you joined as member." in client.get("/t/acme/").content.decode()
    actions = [(e.action, e.actor_username) for e in audit_events_for_tenant(acme)]
    assert actions == [(AuditAction.INVITATION_ACCEPTED, "nina"), (AuditAction.INVITATION_SENT, "alice")]

    _, again = sign_up(link_path(link), "nina2")
    assert again.status_code == 400 and "cannot be used" in again.content.decode()  # works once
    assert not User.objects.filter(username="nina2").exists()


def test_a_person_with_an_account_logs_in_and_accepts_with_the_invited_role(acme, globex, charlie, mail_server):
    invite(login(charlie), "alice@example.com", "admin", tenant="globex")
    path = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    signup = Client().get(path).content.decode()
    assert f"/accounts/login/?next={path}" in signup
    alice = User.objects.get(username="alice")
    client = login(alice)
    question = client.get(path)
    assert "charlie invited alice@example.com to Globex as admin." in question.content.decode()
    assert client.post(path)["Location"] == "/t/globex/"
    assert Membership.objects.get(tenant=globex, user=alice).role == Role.ADMIN
    assert client.post(path).status_code == 404  # used up


def test_the_link_works_only_for_the_invited_email_and_says_why_alike_for_unknown_links(acme, alice, bob, mail_server):
    invite(login(alice), "someone@example.com")
    path = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    client = login(bob)
    wrong = client.get(path)
    unknown = client.get("/accounts/invitations/" + "x" * 43 + "/")
    assert wrong.status_code == unknown.status_code == 404
    assert "sent to another e-mail address than your account" in wrong.content.decode()
    assert "bob@example.com" in wrong.content.decode()
    assert wrong.content == unknown.content
    assert client.post(path).status_code == 404
    assert not Invitation.objects.filter(accepted_at__isnull=False).exists()


def test_an_invitation_expires_after_max_age_days(acme, alice, settings, mail_server):
    settings.INVITATION_MAX_AGE_DAYS = 3
    invite(login(alice), "late@example.com")
    path = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    Invitation.objects.update(sent_at=Invitation.objects.get().sent_at - timedelta(days=3, seconds=1))
    late = login(UserFactory(username="late"))
    page = late.get(path)
    assert page.status_code == 404 and "This invitation expired on" in page.content.decode()
    assert "Ask alice to send it again" in page.content.decode()
    _, response = sign_up(path, "late2")
    assert response.status_code == 400
    assert "Expired" in login(alice).get(reverse("tenants:members", args=["acme"])).content.decode().title()


def test_resending_makes_a_new_link_and_the_old_one_stops_working(acme, alice, mail_server):
    client = login(alice)
    invite(client, "nina@example.com")
    invitation = Invitation.objects.get()
    client.post(reverse("tenants:invitation-resend", args=["acme", invitation.pk]))
    first, second = (link_path(invitation_link(m.text)) for m in mail_server.wait_for(2))
    assert first != second
    _, old = sign_up(first)
    assert old.status_code == 400
    _, new = sign_up(second)
    assert new.status_code == 302
    actions = [e.action for e in audit_events_for_tenant(acme)]
    assert actions == [AuditAction.INVITATION_ACCEPTED, AuditAction.INVITATION_RESENT, AuditAction.INVITATION_SENT]


def test_a_withdrawn_invitation_no_longer_works(acme, alice, mail_server):
    client = login(alice)
    invite(client, "nina@example.com")
    invitation = Invitation.objects.get()
    page = client.post(reverse("tenants:invitation-withdraw", args=["acme", invitation.pk]), follow=True)
    assert "Invitation to nina@example.com withdrawn" in page.content.decode()
    _, response = sign_up(link_path(invitation_link(mail_server.wait_for(1)[0].text)))
    assert response.status_code == 400
    assert not Invitation.objects.exists()
    [event] = audit_events_for_tenant(acme, action=AuditAction.INVITATION_WITHDRAWN)
    assert event.target == "nina@example.com"


def test_inviting_a_member_or_a_pending_email_says_so_and_sends_nothing(acme, alice, mail_server):
    client = login(alice)
    member = invite(client, "BOB@example.com")
    assert member.status_code == 400
    assert "BOB@example.com is already a member of Acme (bob, member)." in member.content.decode()
    invite(client, "nina@example.com")
    again = invite(client, "Nina@example.com")
    assert again.status_code == 400 and "already has a pending invitation" in again.content.decode()
    assert len(mail_server.wait_for(1)) == 1


def test_an_admin_may_not_invite_an_owner(acme, alice, mail_server):
    ada = UserFactory(username="ada")
    Membership.objects.create(tenant=acme, user=ada, role=Role.ADMIN)
    response = invite(login(ada), "boss@example.com", "owner")
    assert response.status_code == 400 and not Invitation.objects.exists()
    assert invite(login(ada), "helper@example.com", "admin").status_code == 200


def test_an_account_with_the_invited_email_is_told_to_log_in_instead_of_signing_up(acme, alice, mail_server):
    invite(login(alice), "charlie@example.com")
    UserFactory(username="charlie")
    _, response = sign_up(link_path(invitation_link(mail_server.wait_for(1)[0].text)), "charlie2")
    assert response.status_code == 400 and "log in to accept" in response.content.decode()


def test_a_member_already_in_keeps_their_role_and_uses_the_link_up(acme, alice, bob, mail_server):
    Invitation.objects.all().delete()
    invite(login(alice), "dora@example.com", "viewer")
    path = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    dora = UserFactory(username="dora")
    Membership.objects.create(tenant=acme, user=dora, role=Role.ADMIN)
    client = login(dora)
    assert "You are already a member of Acme (admin)" in client.get(path).content.decode()
    client.post(path)
    assert Membership.objects.get(tenant=acme, user=dora).role == Role.ADMIN
    assert Invitation.objects.get().accepted_at is not None


def test_with_the_mail_server_down_no_invitation_is_kept(acme, alice, settings):
    from tests.support.processes import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    response = invite(login(alice), "nina@example.com")
    assert response.status_code == 400
    assert "did not take the invitation mail" in response.content.decode()
    assert not Invitation.objects.exists() and not audit_events_for_tenant(acme).exists()


def test_by_default_mails_are_files_and_the_page_says_where(acme, alice, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    client = login(alice)
    assert (
        f"mails are written as files to <code>{tmp_path / 'mail'}</code>"
        in client.get("/t/acme/members/").content.decode()
    )
    page = invite(client, "nina@example.com").content.decode()
    assert f"The mail was written to a file in {tmp_path / 'mail'}" in page
    [written] = (tmp_path / "mail").iterdir()
    assert "/accounts/invitations/" in written.read_text()


def test_the_new_person_must_choose_an_acceptable_password(acme, alice, mail_server):
    invite(login(alice), "nina@example.com")
    path = link_path(invitation_link(mail_server.wait_for(1)[0].text))
    response = Client().post(path, {"username": "nina", "password1": "nina", "password2": "nina"})
    assert response.status_code == 400 and "too short" in response.content.decode()
    assert not User.objects.filter(username="nina").exists()
    _, taken = sign_up(path, "bob")
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    assert PASSWORD  # the fixtures' users keep theirs
