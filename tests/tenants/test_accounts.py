"""A person's own account: the tenants they belong to, changing their password, resetting a forgotten
one by e-mail (delivered to a real SMTP server on loopback). Login stays rate-limited."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tenants.models import Role
from tenants.services import membership_set
from tests.conftest import login
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long and unusual passphrase 42"
RESET_LINK = re.compile(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)")


def test_the_account_page_lists_my_tenants_with_role_and_since_when(acme, globex, bob):
    membership_set(tenant=globex, user=bob, role=Role.VIEWER)
    page = login(bob).get(reverse("account")).content.decode()
    assert "bob@example.com" in page
    rows = re.findall(r'<td data-label="Tenant"><a href="/t/(\w+)/">(\w+)</a></td>\s*<td data-label="Role">(\w+)', page)
    assert rows == [("acme", "Acme", "Member"), ("globex", "Globex", "Viewer")]
    assert reverse("password_change") in page


def test_the_account_page_needs_a_login(db):
    assert Client().get(reverse("account"))["Location"].startswith("/accounts/login/")


def test_a_user_changes_their_password_knowing_the_old_one(acme, bob):
    client = login(bob)
    wrong = client.post(
        reverse("password_change"),
        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200 and "incorrectly" in wrong.content.decode()
    done = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "Password changed" in done.content.decode()
    assert client.get("/t/acme/").status_code == 200  # still logged in here
    assert User.objects.get(username="bob").check_password(NEW_PASSWORD)


def test_a_forgotten_password_is_reset_through_the_mailed_link(acme, bob, mail_server):
    assert reverse("password_reset") in Client().get(reverse("login")).content.decode()
    client = Client()
    sent = client.post(reverse("password_reset"), {"email": "bob@example.com"}, follow=True)
    assert "Check your mail" in sent.content.decode()
    [mail] = mail_server.wait_for(1)
    assert mail.recipients == ["bob@example.com"]
    assert mail.message["Subject"] == "Reset your password on Image search"
    path = RESET_LINK.search(mail.text).group(1)
    form = client.get(path, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True
    )
    assert "Password set" in done.content.decode()
    assert Client().login(username="bob", password=NEW_PASSWORD)
    assert "This link does not work" in Client().get(path, follow=True).content.decode()  # once only


def test_an_unknown_address_gets_the_same_answer_and_no_mail(acme, mail_server):
    sent = Client().post(reverse("password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert "Check your mail" in sent.content.decode()
    assert mail_server.messages == []


def test_reset_requests_are_rate_limited_per_address(acme, bob, settings, mail_server):
    settings.AUTH_FAILURE_LIMIT = 2
    client = Client()
    for _ in range(2):
        assert client.post(reverse("password_reset"), {"email": "bob@example.com"}).status_code == 302
    blocked = client.post(reverse("password_reset"), {"email": "bob@example.com"})
    assert blocked.status_code == 429 and "Too many reset requests" in blocked.content.decode()
    assert len(mail_server.wait_for(2)) == 2


def test_login_stays_rate_limited(acme, bob, settings):
    settings.AUTH_FAILURE_LIMIT = 2
    client = Client()
    for _ in range(2):
        client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    assert client.post(reverse("login"), {"username": "bob", "password": PASSWORD}).status_code == 429
