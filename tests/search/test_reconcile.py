from __future__ import annotations

import io
import re

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.deletion import tenant_delete
from tenants.models import Tenant
from tests.conftest import login
from tests.factories import UserFactory
from tests.search.conftest import upload_sample
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile_index", *args, stdout=out)
    return out.getvalue()


def test_reconcile_requeues_missing_vectors_and_removes_orphans_and_untagged(indexed, acme):
    dog, cat = indexed["dog.jpg"], indexed["cat.png"]
    index.delete_vectors(tenant=acme, ids=[str(dog.id)])  # a ready image lost its vector
    vector = index.fetch_vectors(tenant=acme, ids=[str(cat.id)])[str(cat.id)]
    index.upsert_vectors(tenant=acme, ids=["orphan-1"], embeddings=vector.reshape(1, -1), metadatas=[{"category": ""}])
    index._collection(acme).upsert(ids=["untagged-1"], embeddings=[vector], metadatas=[{"category": "x"}])

    assert "Would have re-queued 1 images" in reconcile("--dry-run")
    assert index.vector_ids(tenant=acme) == {str(a.id) for a in indexed.values() if a != dog} | {"orphan-1"}

    output = reconcile()
    assert "re-queued 1 images missing from the index, removed 1 orphan vectors and 1 vectors without" in output
    dog.refresh_from_db()
    assert dog.status == AssetStatus.READY  # embedded again (in-process here)
    assert index.vector_ids(tenant=acme) == {str(a.id) for a in indexed.values()}
    assert len(index._collection(acme).get(include=[])["ids"]) == 3


def test_untagged_vectors_never_appear_in_results(indexed, acme):
    cat = indexed["cat.png"]
    vector = index.fetch_vectors(tenant=acme, ids=[str(cat.id)])[str(cat.id)]
    index._collection(acme).upsert(ids=["untagged-2"], embeddings=[vector], metadatas=[{"category": ""}])
    hits = index.query_vectors(tenant=acme, embedding=vector, limit=10)
    assert "untagged-2" not in {hit.id for hit in hits}
    assert hits[0].id == str(cat.id)


def test_deleting_a_tenant_removes_its_files_rows_and_vectors_and_nothing_else(indexed, acme, globex, charlie):
    theirs = upload_sample(globex, charlie, "dog.jpg")
    names = [name for a in indexed.values() for name in (a.file.name, a.thumbnail.name)]
    key = acme.vector_key
    tenant_delete(tenant=acme)
    assert not Tenant.objects.filter(vector_uuid=key).exists()
    assert ImageAsset.objects.count() == 1
    assert not any(default_storage.exists(name) for name in names)
    assert key not in index.stored_tenant_keys()
    assert default_storage.exists(theirs.file.name)
    assert index.vector_ids(tenant=globex) == {str(theirs.id)}


def test_reconcile_drops_the_collection_of_a_tenant_deleted_behind_its_back(indexed, acme):
    Tenant.objects.filter(pk=acme.pk).delete()  # bypasses the service
    assert acme.vector_key in index.stored_tenant_keys()
    # Other tests' tenants, flushed from the database, share this Chroma: at least acme's is dropped.
    assert re.search(r"dropped [1-9]\d* collections of deleted tenants", reconcile())
    assert acme.vector_key not in index.stored_tenant_keys()


def test_operators_delete_a_tenant_in_the_admin_with_everything_it_owns(indexed, acme):
    operator = UserFactory(username="op", is_staff=True, is_superuser=True)
    response = login(operator).post(reverse("admin:tenants_tenant_delete", args=[acme.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert ImageAsset.objects.count() == 0
    assert acme.vector_key not in index.stored_tenant_keys()
