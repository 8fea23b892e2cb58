"""A model change without downtime: `manage.py reindex` builds the new model's vectors for every
tenant while search answers from the active model, uploads meanwhile are embedded with both, the
switch is one step recorded in the database, a failure halfway leaves the active model serving and
the build resumable, and `--drop-old` removes the old vectors."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingestion import background, spaces
from ingestion.imaging import load_rgb
from ingestion.models import ReindexProgress, VectorSpace
from ingestion.services import pipeline, reindex
from ingestion.services.deletion import asset_delete
from ingestion.services.editing import asset_update_metadata
from ingestion.services.reindex import DONE, STEPPED, ReindexRefused, reindex_advance, reindex_run, reindex_start
from search.services import search_by_text
from tests.search.conftest import upload_sample
from tests.support.checkpoints import model_checkpoint
from tests.support.processes import wait_until
from tests.testenv import CACHE, SAMPLES, SECOND_CHECKPOINT, TEST_MODEL
from vectors import index
from vectors.embedding import current_model_key, get_embedder, model_key, spec_for
from vectors.index import IndexUnavailable

pytestmark = pytest.mark.django_db(transaction=True)
SECOND = SECOND_CHECKPOINT  # made by tests.testenv before the workers start
SECOND_KEY = model_key(spec_for(name=TEST_MODEL, pretrained=str(SECOND)))


def reindex_command(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("reindex", *args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def library(acme, globex, bob, charlie):
    """Acme's three cookbook pictures and one of Globex's, ready with the first model."""
    return [
        upload_sample(acme, bob, "dog.jpg", tags=["dog"]),
        upload_sample(acme, bob, "dog-with-person.jpg", tags=["dog", "person"]),
        upload_sample(acme, bob, "cat.png", tags=["cat"]),
        upload_sample(globex, charlie, "cat.png"),
    ]


def stored(tenant, space: str) -> set[str]:
    return index.vector_ids(tenant=tenant, space=space)


def test_a_build_embeds_every_tenant_then_switches_in_one_step(acme, globex, library):
    first = current_model_key()
    output = reindex_command(model=TEST_MODEL, pretrained=str(SECOND))
    assert f"Building {TEST_MODEL} ({SECOND})" in output and "is the active model" in output
    assert current_model_key() == SECOND_KEY
    assert VectorSpace.objects.get(state="active").key == SECOND_KEY
    assert VectorSpace.objects.get(state="retired").key == first
    assert stored(acme, SECOND_KEY) == {str(a.id) for a in library[:3]}
    assert stored(globex, SECOND_KEY) == {str(library[3].id)}
    # the new model's vectors, with the images' metadata: a filtered search works at once
    query = get_embedder().embed_texts(["a photo of a dog"])[0]
    hits = search_by_text(tenant=acme, text="a photo of a dog", limit=10)
    vectors = index.fetch_vectors(tenant=acme, space=SECOND_KEY, ids=[str(a.id) for a in library[:3]])
    assert [round(h.score, 4) for h in hits] == sorted(
        (round(float(v @ query), 4) for v in vectors.values()), reverse=True
    )
    [cat] = search_by_text(tenant=acme, text="a photo", limit=10, filters=_tags("cat"))
    assert cat.asset == library[2]
    status = reindex_command(status=True)
    assert f"Active: {TEST_MODEL} ({SECOND})" in status and "Retired (vectors kept until --drop-old)" in status
    assert "are not used since a reindex" in status  # the settings still name the first model
    assert "left service a moment ago" in reindex_command(drop_old=True)  # processes may still read it
    VectorSpace.objects.filter(state="retired").update(retired_at=timezone.now() - timedelta(minutes=1))
    assert reindex_command(drop_old=True).startswith("Removed the vectors of")
    assert index.stored_tenant_keys(first) == set() and index.stored_tenant_keys(SECOND_KEY) == {
        acme.vector_key,
        globex.vector_key,
    }


def _tags(*tags):
    from ingestion.filters import MetadataFilters

    return MetadataFilters(tags=tags)


@pytest.mark.slow  # a second model, several builds
def test_uploads_during_the_build_are_embedded_with_both_models_and_search_stays_on_the_active(
    acme, globex, charlie, library
):
    first = current_model_key()
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    assert current_model_key() == first  # search answers from the active model while the build runs
    new = upload_sample(globex, charlie, "dog.jpg")
    assert new.status == "ready"
    assert str(new.id) in stored(globex, first) and str(new.id) in stored(globex, SECOND_KEY)
    for key, spec in (
        (first, spaces.live_spaces().active),
        (SECOND_KEY, spec_for(name=TEST_MODEL, pretrained=str(SECOND))),
    ):
        [vector] = index.fetch_vectors(tenant=globex, space=key, ids=[str(new.id)]).values()
        [expected] = get_embedder(spec=spec).embed_images([load_rgb(str(SAMPLES / "dog.jpg"))])
        assert float(vector @ expected) > 0.999  # each space holds its own model's vector
    hits = search_by_text(tenant=acme, text="a photo", limit=10)
    active_vectors = index.fetch_vectors(tenant=acme, space=first, ids=[str(h.asset.id) for h in hits])
    query = get_embedder().embed_texts(["a photo"])[0]
    assert [round(h.score, 4) for h in hits] == [round(float(active_vectors[str(h.asset.id)] @ query), 4) for h in hits]
    progress = reindex_command(status=True)
    assert "acme: 0/3 0%" in progress and "globex: 0/1 0%" in progress
    reindex_run()
    assert stored(globex, SECOND_KEY) == {str(library[3].id), str(new.id)}


@pytest.mark.slow  # a second model, several builds
def test_edits_and_deletions_during_the_build_reach_the_new_space(acme, bob, library, monkeypatch):
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    assert reindex_advance(limit=10) == STEPPED  # acme's three images copied; globex not yet
    dog, person, cat = library[:3]
    asset_delete(asset=person)
    asset_update_metadata(asset=cat, category="pets", source="", tags=["cat", "fluffy"])
    assert str(person.id) not in stored(acme, SECOND_KEY)
    [metadata] = index.fetch_metadata(tenant=acme, space=SECOND_KEY, ids=[str(cat.id)]).values()
    assert metadata["category"] == "pets" and metadata["tag:fluffy"] is True
    reindex_run()
    assert stored(acme, SECOND_KEY) == {str(dog.id), str(cat.id)}
    [hit] = search_by_text(tenant=acme, text="a photo", limit=10, filters=_tags("fluffy"))
    assert hit.asset == cat


def test_a_failure_halfway_leaves_the_active_model_serving_and_the_build_resumes(acme, globex, library, monkeypatch):
    first = current_model_key()
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    real, calls = pipeline.assets_embed_into, []

    def failing_after_one(**kwargs):
        calls.append(len(kwargs["assets"]))
        if len(calls) > 1:
            raise IndexUnavailable("Chroma upsert failed: connection refused")
        return real(**kwargs)

    monkeypatch.setattr(reindex, "assets_embed_into", failing_after_one)
    monkeypatch.setattr(reindex, "STEP", 1)
    with pytest.raises(IndexUnavailable):
        reindex_run()
    space = VectorSpace.objects.get(state="building")
    assert "connection refused" in space.error
    assert current_model_key() == first and len(search_by_text(tenant=acme, text="a dog", limit=10)) == 3
    assert sum(ReindexProgress.objects.filter(space=space).values_list("done", flat=True)) == 1
    assert "the last step stopped" in reindex_command(status=True)
    monkeypatch.setattr(reindex, "assets_embed_into", real)
    output = reindex_command()  # resumes
    assert "is the active model" in output and current_model_key() == SECOND_KEY
    assert stored(acme, SECOND_KEY) == {str(a.id) for a in library[:3]} and stored(globex, SECOND_KEY) == {
        str(library[3].id)
    }
    assert index.count_vectors(tenant=acme, space=SECOND_KEY) == 3  # nothing twice


def test_what_cannot_be_built_is_refused_with_the_reason_and_nothing_recorded(acme, library, tmp_path):
    with pytest.raises(CommandError, match="not an OpenCLIP model name"):
        reindex_command(model="ViT-Nope", pretrained=str(SECOND))
    with pytest.raises(CommandError, match="no file there"):
        reindex_command(model=TEST_MODEL, pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(CommandError, match="Give both --model and --pretrained"):
        reindex_command(model=TEST_MODEL)
    assert not VectorSpace.objects.exists()
    active = spaces.live_spaces().active
    with pytest.raises(ReindexRefused, match="is the active model already"):
        reindex_start(model=active.name, pretrained=active.pretrained)
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    other = model_checkpoint(TEST_MODEL, 99, CACHE / f"clip-{TEST_MODEL}-seed99.pt")
    with pytest.raises(CommandError, match="is being built"):
        reindex_command(model=TEST_MODEL, pretrained=str(other))
    assert reindex_advance(limit=10) == STEPPED
    assert reindex_command(cancel=True).startswith("Cancelled the build")
    assert index.stored_tenant_keys(SECOND_KEY) == set()
    assert current_model_key() != SECOND_KEY and not VectorSpace.objects.filter(state="building").exists()


@pytest.mark.slow  # the background embedder and a second model
def test_the_single_process_service_builds_between_uploads_and_switches(settings, acme, bob, library):
    settings.EMBED_RUNNER = "thread"
    settings.EMBED_POLL_SECONDS = 0.2
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    try:
        assert background.start()
        wait_until(lambda: current_model_key() == SECOND_KEY, 60, "the switch")
    finally:
        background.stop()
    assert stored(acme, SECOND_KEY) == {str(a.id) for a in library[:3]}


@pytest.mark.slow  # Chroma's own OpenCLIP function: two more models
@pytest.mark.parametrize("architecture", ["ViT-S-32", "ViT-B-16"])
def test_results_after_the_switch_match_chromas_function_on_the_new_checkpoint(acme, library, architecture):
    from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
    from PIL import Image

    checkpoint = model_checkpoint(architecture, 77, CACHE / f"clip-{architecture}-seed77.pt")
    reindex_command(model=architecture, pretrained=str(checkpoint))
    assert current_model_key() == model_key(spec_for(name=architecture, pretrained=str(checkpoint)))
    theirs = OpenCLIPEmbeddingFunction(model_name=architecture, checkpoint=str(checkpoint))
    names = ["dog.jpg", "dog-with-person.jpg", "cat.png"]
    pictures = theirs([np.array(Image.open(SAMPLES / name).convert("RGB")) for name in names])
    [query] = theirs(["a photo of a dog"])
    expected = {name: float(np.dot(p, query)) for name, p in zip(names, pictures, strict=True)}
    hits = search_by_text(tenant=acme, text="a photo of a dog", limit=10)
    assert {h.asset.original_filename: h.score for h in hits} == pytest.approx(expected, abs=0.01)


@pytest.mark.slow  # a second model, several builds
def test_running_processes_pick_up_the_switch(acme, library, settings, monkeypatch):
    """Another process switches; this one, running, follows within VECTOR_SPACES_REFRESH_SECONDS."""
    settings.VECTOR_SPACES_REFRESH_SECONDS = 5.0
    first = current_model_key()
    reindex_start(model=TEST_MODEL, pretrained=str(SECOND))
    while ReindexProgress.objects.filter(finished_at__isnull=True).exists():
        reindex_advance()
    monkeypatch.setattr(spaces, "refresh", lambda: None)  # the switch below is made as if by another process
    assert current_model_key() == first  # this process reads, and keeps, the state before the switch
    assert reindex_advance() == DONE  # the switch
    assert VectorSpace.objects.get(state="active").key == SECOND_KEY
    assert current_model_key() == first
    wait_until(lambda: current_model_key() == SECOND_KEY, 10, "the running process to see the switch")


@pytest.mark.stack
def test_the_worker_builds_in_the_background_and_follows_the_switch_without_restart(stack, settings, acme, bob, sample):
    from ingestion.models import AssetStatus
    from tests.conftest import login, wait_for_status
    from tests.ingestion.test_worker_stack import upload

    settings.EMBED_RUNNER = "celery"
    client = login(bob)
    [dog] = upload(client, acme, sample("dog.jpg"))
    wait_for_status(dog, {AssetStatus.READY})
    first = current_model_key()
    try:
        output = reindex_command(model=TEST_MODEL, pretrained=str(SECOND), wait=True)
        assert "a Celery worker builds it in the background" in output and "is the active model" in output
        assert stored(acme, SECOND_KEY) == {str(dog.id)}
        time.sleep(settings.VECTOR_SPACES_REFRESH_SECONDS + 1)  # the running worker's view of the models expires
        [cat] = upload(client, acme, sample("cat.png"))
        wait_for_status(cat, {AssetStatus.READY})
        assert str(cat.id) in stored(acme, SECOND_KEY) and str(cat.id) not in stored(acme, first)
        assert {h.asset for h in search_by_text(tenant=acme, text="a photo", limit=10)} == {dog, cat}
    finally:  # the session's worker must not keep the switched model for the next test
        VectorSpace.objects.all().delete()
        time.sleep(settings.VECTOR_SPACES_REFRESH_SECONDS + 1)


@pytest.mark.slow  # a second model
def test_after_the_switch_auto_tags_are_the_new_models(acme, alice, library, settings):
    from ingestion.services.labels import PROMPT, vocabulary_set

    labels = ["dog", "cat", "person", "whiteboard"]
    settings.AUTO_TAG_MIN_SCORE = -1.0  # every label passes, best match first: the order is the model's
    vocabulary_set(tenant=acme, labels=labels, updated_by=alice)
    reindex_command(model=TEST_MODEL, pretrained=str(SECOND))
    new_model = get_embedder(spec=spec_for(name=TEST_MODEL, pretrained=str(SECOND)))
    prompts = new_model.embed_texts([PROMPT.format(label=label) for label in labels])
    stored_vectors = index.fetch_vectors(tenant=acme, space=SECOND_KEY, ids=[str(a.id) for a in library[:3]])
    for asset in library[:3]:
        asset.refresh_from_db()
        scores = prompts @ stored_vectors[str(asset.id)]
        expected = [labels[i] for i in np.argsort(-scores, kind="stable") if scores[i] >= settings.AUTO_TAG_MIN_SCORE]
        assert asset.labels == expected
        [metadata] = index.fetch_metadata(tenant=acme, space=SECOND_KEY, ids=[str(asset.id)]).values()
        assert sorted(k.removeprefix("label:") for k in metadata if k.startswith("label:")) == sorted(expected)
