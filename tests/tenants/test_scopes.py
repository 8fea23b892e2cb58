"""API keys carry a scope (read < write < admin); a key does what both its scope and its user's
current role allow, checked on every request; an out-of-scope call is a 403 naming the scope needed."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from tenants.models import ApiToken, Role, TokenScope
from tenants.services import membership_set
from tenants.tokens import api_token_create
from tests.conftest import keyed_client, login
from tests.factories import image_bytes
from tests.search.conftest import upload_sample

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user, tenant, scope: str):
    return keyed_client(api_token_create(tenant=tenant, user=user, name=scope, scope=scope)[1])


def upload(client, n: int = 0):
    return client.post("/api/v1/images/", {"file": _png(n)}, format="multipart")


def _png(n: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"{n}.png", image_bytes(color=(n, 40, 90)))


def test_a_read_key_lists_and_searches_but_may_not_write_and_the_answer_names_the_scope(acme, bob):
    image = upload_sample(acme, bob, "dog.jpg")
    reader = client_for(bob, acme, "read")
    assert reader.get("/api/v1/images/").status_code == 200
    assert reader.get(f"/api/v1/images/{image.id}/file/").status_code == 200
    assert reader.get("/api/v1/search/", {"q": "dog"}).status_code == 200
    for refused in (
        upload(reader),
        reader.delete(f"/api/v1/images/{image.id}/"),
        reader.patch(f"/api/v1/images/{image.id}/", {"tags": ["x"]}, format="json"),
    ):
        assert refused.status_code == 403
        assert "needs a key with the write scope" in refused.json()["detail"]
    assert reader.get(f"/api/v1/images/{image.id}/").json()["tags"] == []


def test_a_write_key_writes_but_may_not_manage_webhooks(acme, alice):
    writer = client_for(alice, acme, "write")
    assert upload(writer).status_code == 201
    refused = writer.get("/api/v1/webhooks/")
    assert refused.status_code == 403
    assert "needs a key with the admin scope" in refused.json()["detail"]
    assert client_for(alice, acme, "admin").get("/api/v1/webhooks/").status_code == 200


def test_the_scope_never_raises_the_role_and_a_role_change_counts_on_the_next_request(acme, bob, vera):
    viewer = client_for(vera, acme, "admin")
    refused = upload(viewer)
    assert refused.status_code == 403 and "may search but not upload" in refused.json()["detail"]
    assert viewer.get("/api/v1/webhooks/").status_code == 403  # an admin key of a viewer: no webhooks

    member = client_for(bob, acme, "write")
    assert upload(member, 1).status_code == 201
    membership_set(tenant=acme, user=bob, role=Role.VIEWER)
    assert upload(member, 2).status_code == 403
    membership_set(tenant=acme, user=bob, role=Role.MEMBER)
    assert upload(member, 3).status_code == 201


def test_a_scope_change_counts_on_the_next_request(acme, bob):
    token, key = api_token_create(tenant=acme, user=bob, name="k", scope="write")
    client = keyed_client(key)
    assert upload(client).status_code == 201
    ApiToken.objects.filter(pk=token.pk).update(scope=TokenScope.READ)
    assert upload(client, 1).status_code == 403


def test_keys_made_without_a_scope_are_write_keys_as_the_keys_made_before_scopes(acme, bob):
    token, _ = api_token_create(tenant=acme, user=bob, name="old style")
    assert token.scope == "write"
    field = ApiToken._meta.get_field("scope")
    assert field.default == "write"  # the migration gave existing keys this default


def test_the_tokens_page_chooses_the_scope_and_lists_it(acme, bob):
    client = login(bob)
    page = reverse("tenants:tokens", args=["acme"])
    html = client.get(page).content.decode()
    assert 'name="scope" value="read"' in html and "checked" in html.split('value="read"')[1][:40]
    client.post(page, {"name": "uploader", "scope": "write"})
    client.post(page, {"name": "no scope given"})
    assert dict(ApiToken.objects.values_list("name", "scope")) == {"uploader": "write", "no scope given": "read"}
    assert client.post(page, {"name": "bad", "scope": "root"}).status_code == 200
    assert not ApiToken.objects.filter(name="bad").exists()
    listed = client.get(page).content.decode()
    assert '<td data-label="Scope" class="scope">write</td>' in listed


def test_create_api_token_takes_a_scope(acme, bob):
    out = io.StringIO()
    call_command("create_api_token", "--tenant", "acme", "--user", "bob", "--scope", "read", stdout=out)
    assert "(read)" in out.getvalue()
    key = out.getvalue().strip().splitlines()[-1]
    assert ApiToken.objects.get().scope == "read"
    assert upload(keyed_client(key)).status_code == 403
    call_command("create_api_token", "--tenant", "acme", "--user", "bob", stdout=io.StringIO())
    assert ApiToken.objects.order_by("-created_at").first().scope == "write"
