"""Each photo is decoded once: the upload, which decodes it anyway to validate it and make its
thumbnail, also stores the derivative the model needs, and the worker embeds from it. Its vectors
are the ones Chroma's own OpenCLIP function gives for the full photograph."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from sklearn.datasets import load_sample_images

from ingestion.models import ImageAsset
from ingestion.services import pipeline
from ingestion.services.requeue import assets_reembed
from ingestion.services.upload import assets_upload
from tests.testenv import CHECKPOINT, TEST_MODEL
from vectors import index


def photographs() -> dict[str, bytes]:
    """Real photographs bundled with scikit-image and scikit-learn, as JPEGs a camera would send."""
    pixels = {name: getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee")}
    pixels |= dict(zip(("china", "flower"), load_sample_images().images, strict=True))
    photos = {}
    for name, array in pixels.items():
        buffer = io.BytesIO()
        Image.fromarray(array).convert("RGB").save(buffer, format="JPEG", quality=92)
        photos[f"{name}.jpg"] = buffer.getvalue()
    return photos


@pytest.fixture
def decodes(monkeypatch):
    """Counts the worker's decodes of stored originals while they run for real."""
    count = {"originals": 0}
    load_rgb = pipeline.load_rgb

    def counting(*args, **kwargs):
        count["originals"] += 1
        return load_rgb(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_rgb", counting)
    return count


@pytest.mark.slow  # Chroma's own OpenCLIP function: a second model
def test_uploads_are_embedded_from_their_derivative_with_the_reference_vectors(transactional_db, acme, bob, decodes):
    photos = photographs()
    files = [SimpleUploadedFile(name, data) for name, data in photos.items()]
    outcomes = assets_upload(tenant=acme, uploaded_by=bob, files=files)
    assets = {o.filename: o.asset for o in outcomes}
    assert {a.status for a in assets.values()} == {"ready"}
    assert {a.derivative_side for a in assets.values()} == {224}
    assert decodes["originals"] == 0  # the worker read derivatives only

    stored = index.fetch_vectors(tenant=acme, ids=[str(a.id) for a in assets.values()])
    reference = OpenCLIPEmbeddingFunction(model_name=TEST_MODEL, checkpoint=str(CHECKPOINT))
    theirs = reference([np.array(Image.open(io.BytesIO(data)).convert("RGB")) for data in photos.values()])
    cosines = [
        float(np.dot(stored[str(assets[name].id)], vector) / np.linalg.norm(vector))
        for name, vector in zip(photos, theirs, strict=True)
    ]
    assert float(np.median(cosines)) >= 0.999, cosines
    assert min(cosines) >= 0.998, cosines


def test_without_a_fitting_derivative_the_original_is_decoded_once_and_one_is_made(
    transactional_db, settings, acme, bob, decodes
):
    [outcome] = assets_upload(
        tenant=acme, uploaded_by=bob, files=[SimpleUploadedFile("a.jpg", photographs()["coffee.jpg"])]
    )
    [before] = index.fetch_vectors(tenant=acme, ids=[str(outcome.asset.id)]).values()
    ImageAsset.objects.filter(id=outcome.asset.id).update(derivative_side=0)  # as if made for another model
    assets_reembed(assets=ImageAsset.objects.filter(id=outcome.asset.id))
    outcome.asset.refresh_from_db()
    assert (outcome.asset.status, outcome.asset.derivative_side, decodes["originals"]) == ("ready", 224, 1)
    [after] = index.fetch_vectors(tenant=acme, ids=[str(outcome.asset.id)]).values()
    assert float(np.dot(before, after)) >= 0.999
