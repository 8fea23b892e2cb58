"""Deleting an image, or a whole tenant with everything it owns."""

from __future__ import annotations

import contextlib

from django.core.files.storage import default_storage
from django.db import transaction

from ingestion.models import ImageAsset
from ingestion.services.upload import storage_prefix
from tenants.models import Tenant
from vectors import index


def asset_delete(*, asset: ImageAsset) -> None:
    """Removes the vector, then the row, then (once committed) the files. If Chroma cannot be
    reached nothing is removed (IndexUnavailable), so a retry finds everything still in place."""
    index.delete_vectors(tenant=asset.tenant, ids=[str(asset.id)])
    names = [name for name in (asset.file.name, asset.thumbnail.name) if name]
    if asset.derivative_side:
        names.append(asset.derivative_name(asset.derivative_side))

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    with transaction.atomic():
        asset.delete()
        transaction.on_commit(delete_files)


def tenant_delete(*, tenant: Tenant) -> None:
    """Removes a tenant with everything it owns: its vectors (its collection), its files, its rows.
    If Chroma cannot be reached nothing is removed (IndexUnavailable)."""
    index.delete_tenant_vectors(tenant=tenant)
    prefix = storage_prefix(tenant)
    with transaction.atomic():
        tenant.delete()
        transaction.on_commit(lambda: _delete_tree(prefix))


def _delete_tree(folder: str) -> None:
    """Everything stored under `folder`: files and subfolders on a disk, keys under the prefix in an
    object store (which has no folders to test for)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        default_storage.delete(f"{folder}/{name}")
    for sub in folders:
        _delete_tree(f"{folder}/{sub}")
    with contextlib.suppress(OSError):
        default_storage.delete(folder)
