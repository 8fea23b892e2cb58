from __future__ import annotations

import io
import shutil

import pytest
from django.core.management import CommandError, call_command

from ingestion.models import AssetStatus, ImageAsset
from tenants.models import Role, Tenant
from tests.factories import UserFactory, image_bytes
from tests.testenv import SAMPLES
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_tenant_with_an_owner(db):
    UserFactory(username="olga")
    output = run("create_tenant", "initech", "--name", "Initech", "--owner", "olga")
    assert "Created tenant 'initech'" in output
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.memberships.get().role == Role.OWNER


def test_create_tenant_refuses_an_unknown_owner_and_a_taken_slug(acme):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        run("create_tenant", "x-corp", "--name", "X", "--owner", "ghost")
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "acme", "--name", "Acme again")


def test_import_images_indexes_a_tree_skips_known_files_and_lists_refusals(acme, tmp_path):
    shutil.copytree(SAMPLES, tmp_path / "photos", ignore=shutil.ignore_patterns("*.md"))
    (tmp_path / "photos" / "nested").mkdir()
    (tmp_path / "photos" / "nested" / "red.webp").write_bytes(image_bytes("WEBP"))
    (tmp_path / "photos" / "nested" / "notes.jpg").write_text("not a picture")
    output = run(
        "import_images", str(tmp_path / "photos"), "--tenant", "acme", "--category", "archive", "--source", "nas"
    )
    assert "Imported 4 images into acme; skipped 0 already indexed; refused 1." in output
    assert "notes.jpg: Unsupported file type" in output
    assets = ImageAsset.objects.for_tenant(acme)
    assert set(assets.values_list("status", flat=True)) == {AssetStatus.READY}
    assert set(assets.values_list("category", "source")) == {("archive", "nas")}
    assert index.count_vectors(tenant=acme) == 4

    again = run("import_images", str(tmp_path / "photos"), "--tenant", "acme")
    assert "Imported 0 images into acme; skipped 4 already indexed; refused 1." in again
    assert index.count_vectors(tenant=acme) == 4


def test_import_images_needs_an_existing_tenant(db, tmp_path):
    with pytest.raises(CommandError, match="no tenant 'nope'"):
        run("import_images", str(tmp_path), "--tenant", "nope")
