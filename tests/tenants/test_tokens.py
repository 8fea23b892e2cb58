from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tenants.models import ApiToken
from tenants.tokens import api_token_authenticate, api_token_create, hash_key
from tests.conftest import login


def test_a_key_is_shown_once_and_only_its_hash_is_stored(acme, bob):
    client = login(bob)
    response = client.post(reverse("tenants:tokens", args=["acme"]), {"name": "DAM sync"})
    key = response.context["new_key"]
    assert key.startswith("isk_") and key in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.name, token.user, token.tenant) == ("DAM sync", bob, acme)
    assert token.key_hash == hash_key(key) and key not in (token.key_hash, token.prefix)
    listing = client.get(reverse("tenants:tokens", args=["acme"])).content.decode()
    assert "DAM sync" in listing and key not in listing


def test_members_see_their_own_tokens_and_owners_see_all(acme, alice, bob, vera):
    api_token_create(tenant=acme, user=bob, name="bob's")
    api_token_create(tenant=acme, user=vera, name="vera's")
    assert [t.name for t in login(vera).get(reverse("tenants:tokens", args=["acme"])).context["tokens"]] == ["vera's"]
    assert len(login(alice).get(reverse("tenants:tokens", args=["acme"])).context["tokens"]) == 2


def test_revoking_in_the_ui_stops_the_key(acme, bob, vera):
    token, key = api_token_create(tenant=acme, user=bob, name="x")
    assert login(vera).post(reverse("tenants:token-revoke", args=["acme", token.pk])).status_code == 404
    assert api_token_authenticate(key) is not None
    login(bob).post(reverse("tenants:token-revoke", args=["acme", token.pk]))
    assert api_token_authenticate(key) is None


def test_another_tenants_member_gets_404_on_token_pages(acme, globex, bob, charlie):
    token, _ = api_token_create(tenant=acme, user=bob, name="x")
    client = login(charlie)
    assert client.get(reverse("tenants:tokens", args=["acme"])).status_code == 404
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
