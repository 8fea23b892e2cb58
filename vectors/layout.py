"""What an image's record in Chroma holds besides its vector, and how a filter reads it: the one
place that knows the metadata keys. Writers (ingestion) build records with `image_metadata`, readers
(search, the image list) build `where` clauses with `filters_where`; the index adds the tenant key.

    {"category": str, "source": str, "uploaded_at": epoch seconds, "tag:<tag>": True, ...,
     "label:<label>": True, ..., "tenant": key}

Tags are one boolean key each because Chroma metadata holds scalars only: "has all of these tags"
is then an `$and` of equalities that Chroma evaluates without scanning strings. Labels (auto-tags,
given by the model from the tenant's vocabulary) are kept the same way, apart from the tags people
give, so relabelling never touches a person's tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

TENANT_KEY = "tenant"
TAG_PREFIX = "tag:"
LABEL_PREFIX = "label:"
MetadataValue = str | int | float | bool
Metadata = dict[str, MetadataValue]
Where = dict[str, Any]


def image_metadata(
    *, category: str, source: str, uploaded_at: datetime, tags: Iterable[str], labels: Iterable[str] = ()
) -> Metadata:
    metadata: Metadata = {"category": category, "source": source, "uploaded_at": int(uploaded_at.timestamp())}
    for tag in tags:
        metadata[f"{TAG_PREFIX}{tag}"] = True
    for label in labels:
        metadata[f"{LABEL_PREFIX}{label}"] = True
    return metadata


def labels_change(*, labels: Iterable[str], removed: Iterable[str]) -> dict[str, MetadataValue | None]:
    """What to send `vectors.index.update_metadata` for an image whose labels changed: each label it
    has, and each it lost as None."""
    current = list(labels)
    change: dict[str, MetadataValue | None] = {f"{LABEL_PREFIX}{label}": True for label in current}
    change.update({f"{LABEL_PREFIX}{label}": None for label in removed if label not in current})
    return change


def image_metadata_change(
    *, category: str, source: str, uploaded_at: datetime, tags: Iterable[str], removed_tags: Iterable[str] = ()
) -> dict[str, MetadataValue | None]:
    """What to send `vectors.index.update_metadata` for an image whose metadata changed: the whole
    record, and each tag it no longer has as None (Chroma merges keys; None removes one)."""
    current = list(tags)
    change: dict[str, MetadataValue | None] = dict(
        image_metadata(category=category, source=source, uploaded_at=uploaded_at, tags=current)
    )
    for tag in removed_tags:
        if tag not in current:
            change[f"{TAG_PREFIX}{tag}"] = None
    return change


def filters_where(
    *,
    category: str = "",
    source: str = "",
    tags: Iterable[str] = (),
    labels: Iterable[str] = (),
    uploaded_from: datetime | None = None,
    uploaded_to: datetime | None = None,
) -> Where | None:
    """The user's filters as a Chroma `where` (None when there are none); the index wraps it with
    the tenant condition."""
    conditions: list[Where] = []
    if category:
        conditions.append({"category": {"$eq": category}})
    if source:
        conditions.append({"source": {"$eq": source}})
    conditions.extend({f"{TAG_PREFIX}{tag}": {"$eq": True}} for tag in tags)
    conditions.extend({f"{LABEL_PREFIX}{label}": {"$eq": True}} for label in labels)
    if uploaded_from:
        conditions.append({"uploaded_at": {"$gte": int(uploaded_from.timestamp())}})
    if uploaded_to:
        conditions.append({"uploaded_at": {"$lte": int(uploaded_to.timestamp())}})
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


# Chroma Cloud (and distributed Chroma) refuses a `where` of more conditions than this; the index
# keeps every query inside it, so moving there needs no code change.
MAX_WHERE_PREDICATES = 8


def where_predicates(where: Where | None) -> int:
    """The conditions a `where` clause holds, `$and`/`$or` groups unpacked."""
    if not where:
        return 0
    count = 0
    for key, value in where.items():
        if key in {"$and", "$or"}:
            count += sum(where_predicates(part) for part in value)
        else:
            count += 1
    return count
