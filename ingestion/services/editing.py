"""Changing what an image says about itself after upload (category, source, tags): the row and, in
the same transaction, its record in the index, so a filter on a new tag finds it at once and one on
a removed tag no longer does. Nothing is embedded again: only the metadata changes.

One image is edited on its page or through the API (`asset_update_metadata`, the values replaced);
many at once by a bulk action (`assets_change_metadata`: tags added or removed, a category or
source set). An image still waiting for its vector gets the new values when it is embedded (the
pipeline reads them from the row then, and once more after writing, see `pipeline`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ingestion.models import MAX_TAGS, AssetStatus, ImageAsset, parse_tags
from vectors import index
from vectors.layout import image_metadata_change

EDITABLE = ("category", "source", "tags")
# Images whose record may be in the index: ready ones, and those being embedded right now.
INDEXED = (AssetStatus.READY, AssetStatus.PROCESSING)


@dataclass
class EditReport:
    changed: list[ImageAsset] = field(default_factory=list)
    unchanged: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # image id -> why


def _validate(asset: ImageAsset) -> None:
    asset.clean_fields(exclude=[f.name for f in ImageAsset._meta.fields if f.name not in EDITABLE])


def _write(tenant_assets: Sequence[tuple[ImageAsset, list[str]]]) -> None:
    """Saves the images (of one tenant) and their index records in one transaction: Chroma out of
    reach (IndexUnavailable) changes nothing. Each image comes with the tags it lost."""
    if not tenant_assets:
        return
    now = timezone.now()
    for asset, _ in tenant_assets:
        asset.updated_at = now
    with transaction.atomic():
        ImageAsset.objects.bulk_update([a for a, _ in tenant_assets], [*EDITABLE, "tag_index", "updated_at"])
        indexed = [(a, removed) for a, removed in tenant_assets if a.status in INDEXED]
        if indexed:
            index.update_metadata(
                tenant=indexed[0][0].tenant,
                ids=[str(a.id) for a, _ in indexed],
                metadatas=[
                    image_metadata_change(
                        category=a.category,
                        source=a.source,
                        uploaded_at=a.created_at,
                        tags=a.tags,
                        removed_tags=removed,
                    )
                    for a, removed in indexed
                ],
            )


def asset_update_metadata(*, asset: ImageAsset, category: str, source: str, tags: Sequence[str]) -> list[str]:
    """Replaces the image's category, source and tags (validated by `ImageMetadataForm` first);
    returns the names of the fields that changed. Raises ValidationError or IndexUnavailable,
    having changed nothing."""
    before = {"category": asset.category, "source": asset.source, "tags": list(asset.tags)}
    asset.category, asset.source = category.strip(), source.strip()
    asset.set_tags(parse_tags(tags))
    changed = [name for name in EDITABLE if getattr(asset, name) != before[name]]
    if not changed:
        return []
    try:
        _validate(asset)
        _write([(asset, [t for t in before["tags"] if t not in asset.tags])])  # type: ignore[union-attr]
    except BaseException:
        asset.category, asset.source = str(before["category"]), str(before["source"])
        asset.set_tags(list(before["tags"]))
        raise
    return changed


def assets_change_metadata(
    *,
    assets: Sequence[ImageAsset],
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    category: str | None = None,
    source: str | None = None,
) -> EditReport:
    """One bulk step: adds and removes tags, sets the category or source (None leaves it), on each
    image of one tenant; images that already say so are left alone (repeating it changes nothing).
    An image that would pass MAX_TAGS is refused, alone."""
    report = EditReport()
    writes: list[tuple[ImageAsset, list[str]]] = []
    for asset in assets:
        tags = [t for t in asset.tags if t not in remove_tags]
        tags += [t for t in add_tags if t not in tags]
        new_category = asset.category if category is None else category.strip()
        new_source = asset.source if source is None else source.strip()
        if (tags, new_category, new_source) == (asset.tags, asset.category, asset.source):
            report.unchanged += 1
            continue
        if len(tags) > MAX_TAGS:
            report.refused[str(asset.id)] = (
                f"{asset.original_filename} already has {len(asset.tags)} tags (at most {MAX_TAGS})."
            )
            continue
        removed = [t for t in asset.tags if t not in tags]
        asset.category, asset.source = new_category, new_source
        asset.set_tags(tags)
        try:
            _validate(asset)
        except ValidationError as exc:
            report.refused[str(asset.id)] = " ".join(exc.messages)
            continue
        writes.append((asset, removed))
    _write(writes)
    report.changed = [asset for asset, _ in writes]
    return report
