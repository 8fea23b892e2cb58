"""Deleting an image (through the page or the API) or a whole tenant (in the admin) removes its
files, rows and vectors, and nothing else: checked against snapshots of the media folder, the
database and the Chroma server."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from ingestion.models import AssetStatus, ImageAsset
from tenants.models import Membership, Tenant
from tenants.tokens import api_token_create
from tests.conftest import login
from tests.factories import UserFactory
from tests.faults.harness import ids, picture, upload, wait_until_final
from vectors import index

pytestmark = pytest.mark.stack


@dataclass
class Snapshot:
    files: dict[str, str]
    rows: set[str]
    tenants: set[str]
    vectors: dict[str, dict[str, list[float]]]


def snapshot(media: Path, tenants: list[Tenant]) -> Snapshot:
    files = {
        str(path.relative_to(media)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(media.rglob("*"))
        if path.is_file()
    }
    vectors = {}
    for tenant in tenants:
        if Tenant.objects.filter(pk=tenant.pk).exists():
            stored = index.fetch_vectors(tenant=tenant, ids=sorted(index.vector_ids(tenant=tenant)))
            vectors[tenant.slug] = {key: vector.tolist() for key, vector in stored.items()}
    return Snapshot(
        files=files,
        rows={str(i) for i in ImageAsset.objects.values_list("id", flat=True)},
        tenants=index.stored_tenant_keys(),
        vectors=vectors,
    )


def files_of(asset: ImageAsset) -> set[str]:
    return {asset.file.name, asset.thumbnail.name, asset.derivative_name(asset.derivative_side)}


def test_deleting_an_image_or_a_tenant_removes_its_files_rows_and_vectors_and_nothing_else(
    faults, acme, globex, alice, charlie
):
    ours = upload(login(alice), acme, picture(31), picture(32), picture(33))
    theirs = upload(login(charlie), globex, picture(31), picture(34))  # same bytes as one of ours
    wait_until_final([*ours, *theirs])
    assert {a.status for a in [*ours, *theirs]} == {AssetStatus.READY}
    tenants = [acme, globex]
    before = snapshot(faults.media, tenants)
    assert all(name in before.files for a in [*ours, *theirs] for name in files_of(a))

    # one image through the page
    page_victim = ours[0]
    response = login(alice).post(reverse("search:delete", args=[acme.slug, page_victim.id]))
    assert response.status_code == 302
    after_page = snapshot(faults.media, tenants)
    assert set(before.files) - set(after_page.files) == files_of(page_victim)
    assert after_page.files == {k: v for k, v in before.files.items() if k not in files_of(page_victim)}
    assert after_page.rows == before.rows - {str(page_victim.id)}
    assert after_page.vectors["acme"] == {k: v for k, v in before.vectors["acme"].items() if k != str(page_victim.id)}
    assert after_page.vectors["globex"] == before.vectors["globex"]

    # one image through the API
    api_victim = ours[1]
    _, key = api_token_create(tenant=acme, user=alice, name="faults")
    response = Client().delete(reverse("api:image-detail", args=[api_victim.id]), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 204, response.content
    after_api = snapshot(faults.media, tenants)
    assert after_api.files == {k: v for k, v in after_page.files.items() if k not in files_of(api_victim)}
    assert after_api.rows == after_page.rows - {str(api_victim.id)}
    assert set(after_api.vectors["acme"]) == set(after_page.vectors["acme"]) - {str(api_victim.id)}
    assert after_api.vectors["globex"] == before.vectors["globex"]

    # the whole tenant, by an operator in the admin
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    response = login(operator).post(reverse("admin:tenants_tenant_delete", args=[acme.pk]), {"post": "yes"})
    assert response.status_code == 302
    after_tenant = snapshot(faults.media, tenants)
    assert not (faults.media / "tenants" / str(acme.vector_uuid)).exists()
    assert after_tenant.files == {
        k: v for k, v in after_api.files.items() if not k.startswith(f"tenants/{acme.vector_uuid}/")
    }
    assert after_tenant.rows == after_api.rows - ids(ours)
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert not Membership.objects.filter(tenant_id=acme.pk).exists()
    assert after_tenant.tenants == before.tenants - {acme.vector_key}
    assert after_tenant.vectors == {"globex": before.vectors["globex"]}
