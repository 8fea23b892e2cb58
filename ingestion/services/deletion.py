"""Deleting an image, or a whole tenant with everything it owns."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from django.core.files.storage import default_storage
from django.db import transaction

from ingestion.models import ImageAsset, VectorSpace, VectorSpaceState
from ingestion.services.events import images_emit
from ingestion.services.upload import storage_prefix
from tenants.models import Tenant
from vectors import index
from webhooks.models import EventType


def asset_delete(*, asset: ImageAsset) -> None:
    """Removes the vector, then the row, then (once committed) the files. If Chroma cannot be
    reached nothing is removed (IndexUnavailable), so a retry finds everything still in place."""
    assets_delete(tenant=asset.tenant, assets=[asset])


def assets_delete(*, tenant: Tenant, assets: Sequence[ImageAsset]) -> int:
    """`asset_delete` for many images of one tenant at once: one index call, one transaction.
    Images already gone are skipped, so deleting the same images again changes nothing."""
    assets = [asset for asset in assets if asset.tenant_id == tenant.pk]
    if not assets:
        return 0
    index.delete_vectors(tenant=tenant, ids=[str(asset.id) for asset in assets])
    names = []
    for asset in assets:
        names += [name for name in (asset.file.name, asset.thumbnail.name) if name]
        if asset.derivative_side:
            names.append(asset.derivative_name(asset.derivative_side))

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    with transaction.atomic():
        rows = ImageAsset.objects.for_tenant(tenant).select_related("tenant").filter(id__in=[a.id for a in assets])
        gone = list(rows.select_for_update(of=("self",)))
        deleted, _ = rows.delete()
        images_emit(EventType.IMAGE_DELETED, gone)
        transaction.on_commit(delete_files)
    return deleted


def tenant_delete(*, tenant: Tenant) -> None:
    """Removes a tenant with everything it owns: its vectors (its collection in every space, those
    of models switched away from included), its files, its rows. If Chroma cannot be reached nothing
    is removed (IndexUnavailable)."""
    index.delete_tenant_vectors(tenant=tenant)
    for key in VectorSpace.objects.filter(state=VectorSpaceState.RETIRED).values_list("key", flat=True):
        index.delete_tenant_vectors(tenant=tenant, space=key)
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
