"""Auto-tags: each tenant keeps a vocabulary of labels (`LabelVocabulary`, edited by its owners and
admins), and each ready image gets the labels whose text, "a photo of a {label}", lies close enough
to its vector (cosine similarity at least AUTO_TAG_MIN_SCORE), best match first.

Labels come from the image's vector, never from embedding the picture again: the pipeline labels a
batch with the vectors it has just made (`labels_for`), and a changed vocabulary relabels the whole
tenant in the background from the stored vectors (a `relabel` bulk action, steps of `bulk.STEP`
images: one read of their vectors, one metadata write). The labels' text vectors are computed once
per model and vocabulary. Labels live beside the tags people give, never mixed with them: on the
row (`labels`, `label_index`) and in the index (`label:<label>` keys, `vectors.layout`)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from ingestion.models import AssetStatus, BulkAction, BulkActionKind, ImageAsset, LabelVocabulary, parse_tags
from ingestion.spaces import live_spaces
from tenants.models import Tenant
from vectors import index
from vectors.embedding import ClipEmbedder, Vectors, get_embedder, model_key
from vectors.layout import LABEL_PREFIX, labels_change

PROMPT = "a photo of a {label}"

_prompts_lock = threading.Lock()
_prompt_vectors: dict[tuple[str, tuple[str, ...]], Vectors] = {}
MAX_CACHED_VOCABULARIES = 1024


def vocabulary_of(tenant: Tenant) -> list[str]:
    vocabulary = LabelVocabulary.objects.filter(tenant=tenant).values_list("labels", flat=True).first()
    return list(vocabulary or [])


def _label_vectors(embedder: ClipEmbedder, labels: Sequence[str]) -> Vectors:
    key = (embedder.model_key, tuple(labels))
    with _prompts_lock:
        cached = _prompt_vectors.get(key)
    if cached is not None:
        return cached
    vectors = embedder.embed_texts([PROMPT.format(label=label) for label in labels])
    with _prompts_lock:
        if len(_prompt_vectors) >= MAX_CACHED_VOCABULARIES:
            _prompt_vectors.clear()
        _prompt_vectors[key] = vectors
    return vectors


def labels_for(*, labels: Sequence[str], vectors: Vectors, embedder: ClipEmbedder) -> list[list[str]]:
    """For each image vector (unit length, made by `embedder`'s model), the labels it passes
    AUTO_TAG_MIN_SCORE for, the best first."""
    if not labels or not len(vectors):
        return [[] for _ in range(len(vectors))]
    scores = np.asarray(vectors, dtype=np.float32) @ _label_vectors(embedder, labels).T
    minimum = settings.AUTO_TAG_MIN_SCORE
    found = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        found.append([labels[i] for i in order if row[i] >= minimum])
    return found


def vocabulary_set(*, tenant: Tenant, labels: str | Sequence[str], updated_by: User | None) -> BulkAction | None:
    """Replaces the tenant's vocabulary (normalised as tags are: trimmed, lower-cased, de-duplicated)
    and relabels its images in the background; returns that action, or None when nothing changed.
    Raises ValidationError, having changed nothing."""
    from ingestion.services.bulk import bulk_action_start  # bulk imports this module to run the relabelling

    wanted = parse_tags(labels)
    LabelVocabulary(labels=wanted).clean_fields(exclude=["tenant", "updated_by"])
    with transaction.atomic():  # two saves at once: one creates the row, the other waits for it
        vocabulary, created = LabelVocabulary.objects.select_for_update().get_or_create(
            tenant=tenant, defaults={"labels": wanted, "updated_by": updated_by}
        )
        if not created:
            if vocabulary.labels == wanted:
                return None
            vocabulary.labels, vocabulary.updated_by = wanted, updated_by
            vocabulary.save()
        action, _ = bulk_action_start(
            tenant=tenant, created_by=updated_by, key=f"relabel-{uuid.uuid4()}", kind=BulkActionKind.RELABEL,
        )  # fmt: skip
    return action


def assets_relabel(*, tenant: Tenant, assets: Sequence[ImageAsset]) -> int:
    """Labels the tenant's ready images again from their stored vectors in the active model's space
    (read afresh: a switch made by another process counts at once), with the vocabulary as it is
    now; the rows and the index records change together, every `label:` key the new labels lack
    removed. Relabellings of one tenant take turns (its vocabulary row is locked), so two saves in
    a row end with the second's labels. Returns how many images changed."""
    ids = [asset.id for asset in assets if asset.tenant_id == tenant.pk]
    if not ids:
        return 0
    active = live_spaces(fresh=True).active
    space = model_key(active)
    with transaction.atomic():
        vocabulary = LabelVocabulary.objects.select_for_update().filter(tenant=tenant).first()
        wanted = list(vocabulary.labels) if vocabulary else []
        ready = list(
            ImageAsset.objects.select_for_update()
            .for_tenant(tenant)
            .filter(id__in=ids, status=AssetStatus.READY)
            .order_by("created_at", "id")
        )
        names = [str(asset.id) for asset in ready]
        stored = index.fetch_vectors(tenant=tenant, space=space, ids=names)
        records = index.fetch_metadata(tenant=tenant, space=space, ids=names)
        found = [asset for asset in ready if str(asset.id) in stored]
        if not found:
            return 0
        new_labels = labels_for(
            labels=wanted,
            vectors=np.stack([stored[str(asset.id)] for asset in found]),
            embedder=get_embedder("text", spec=active),
        )
        changed: list[tuple[ImageAsset, list[str]]] = []
        for asset, labels in zip(found, new_labels, strict=True):
            held = {
                key.removeprefix(LABEL_PREFIX) for key in records.get(str(asset.id), {}) if key.startswith(LABEL_PREFIX)
            }
            stray = sorted(held - set(labels))
            if labels != asset.labels or stray or held != set(labels):
                asset.set_labels(labels)
                changed.append((asset, stray))
        if not changed:
            return 0
        ImageAsset.objects.bulk_update([asset for asset, _ in changed], ["labels", "label_index"])
        index.update_metadata(
            tenant=tenant,
            space=space,
            ids=[str(asset.id) for asset, _ in changed],
            metadatas=[labels_change(labels=asset.labels, removed=stray) for asset, stray in changed],
        )
    return len(changed)
