from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tenants.models import ApiToken, Role
from tenants.services import membership_set
from tenants.tokens import api_token_authenticate, api_token_create, hash_key
from tests.conftest import login


def test_a_key_is_shown_once_on_the_page_the_redirect_lands_on_and_only_its_hash_is_stored(acme, bob):
    client = login(bob)
    tokens_page = reverse("tenants:tokens", args=["acme"])
    created = client.post(tokens_page, {"name": "DAM sync"})
    assert (created.status_code, created["Location"]) == (302, tokens_page)
    landed = client.get(tokens_page)
    key = landed.context["new_key"]
    assert key.startswith("isk_") and key in landed.content.decode()
    assert "no-store" in landed["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.name, token.user, token.tenant) == ("DAM sync", bob, acme)
    assert token.key_hash == hash_key(key) and key not in (token.key_hash, token.prefix)
    assert key not in str(dict(client.session))
    reloaded = client.get(tokens_page).content.decode()
    assert "DAM sync" in reloaded and key not in reloaded
    assert ApiToken.objects.count() == 1


def test_a_waiting_key_is_shown_only_on_its_own_tenants_page(acme, globex, bob):
    membership_set(tenant=globex, user=bob, role=Role.MEMBER)
    client = login(bob)
    client.post(reverse("tenants:tokens", args=["acme"]), {"name": "acme key"})
    assert client.get(reverse("tenants:tokens", args=["globex"])).context["new_key"] is None
    assert client.get(reverse("tenants:tokens", args=["acme"])).context["new_key"].startswith("isk_")


def test_a_form_error_creates_nothing_and_shows_the_form_again(acme, bob):
    response = login(bob).post(reverse("tenants:tokens", args=["acme"]), {"name": ""})
    assert response.status_code == 200 and response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_members_see_their_own_tokens_and_owners_see_all(acme, alice, bob, vera):
    api_token_create(tenant=acme, user=bob, name="bob's")
    api_token_create(tenant=acme, user=vera, name="vera's")
    assert [t.name for t in login(vera).get(reverse("tenants:tokens", args=["acme"])).context["tokens"]] == ["vera's"]
    assert len(login(alice).get(reverse("tenants:tokens", args=["acme"])).context["tokens"]) == 2


def test_revoking_in_the_ui_asks_first_then_stops_the_key(acme, bob, vera):
    token, key = api_token_create(tenant=acme, user=bob, name="nightly sync")
    revoke = reverse("tenants:token-revoke", args=["acme", token.pk])
    assert login(vera).get(revoke).status_code == 404
    assert login(vera).post(revoke).status_code == 404
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    listing = client.get(reverse("tenants:tokens", args=["acme"])).content.decode()
    assert f'href="{revoke}"' in listing and f'action="{revoke}"' not in listing  # the list only links to the question
    question = client.get(revoke)
    page = question.content.decode()
    assert question.status_code == 200 and "Revoke key “nightly sync”?" in page
    assert f'href="{reverse("tenants:tokens", args=["acme"])}"' in page  # Cancel
    assert api_token_authenticate(key) is not None  # asking revoked nothing
    form = re.search(
        rf'<form method="post" action="{revoke}">.*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S
    )
    assert form, "the Revoke button is a POST form with its CSRF token"
    done = client.post(revoke, {"csrfmiddlewaretoken": form[1]})
    assert (done.status_code, done["Location"]) == (302, reverse("tenants:tokens", args=["acme"]))
    assert api_token_authenticate(key) is None
    assert "is revoked" in client.get(revoke).content.decode()


def test_another_tenants_member_gets_404_on_token_pages(acme, globex, bob, charlie):
    token, _ = api_token_create(tenant=acme, user=bob, name="x")
    client = login(charlie)
    assert client.get(reverse("tenants:tokens", args=["acme"])).status_code == 404
    assert client.get(reverse("tenants:token-revoke", args=["acme", token.pk])).status_code == 404
    assert client.post(reverse("tenants:token-revoke", args=["acme", token.pk])).status_code == 404
    assert client.post(reverse("tenants:token-revoke", args=["globex", token.pk])).status_code == 404
    assert ApiToken.objects.get().is_active


def test_tokens_need_a_membership(acme, charlie):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not a member"):
        api_token_create(tenant=acme, user=charlie, name="x")


def test_the_command_prints_the_key_as_its_last_line(acme, bob):
    out = io.StringIO()
    call_command("create_api_token", "--tenant", "acme", "--user", "bob", "--name", "ci", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    token, membership = api_token_authenticate(key)
    assert (token.name, membership.tenant, membership.user) == ("ci", acme, bob)
    with pytest.raises(CommandError, match="no tenant"):
        call_command("create_api_token", "--tenant", "nope", "--user", "bob", stdout=io.StringIO())


def test_operators_list_and_revoke_tokens_in_the_admin(acme, bob):
    from tests.factories import UserFactory

    operator = UserFactory(username="op", is_staff=True, is_superuser=True)
    token, key = api_token_create(tenant=acme, user=bob, name="x")
    client = login(operator)
    page = client.get(reverse("admin:tenants_apitoken_changelist")).content.decode()
    assert token.prefix in page and token.key_hash not in page
    client.post(reverse("admin:tenants_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})
    assert api_token_authenticate(key) is None
