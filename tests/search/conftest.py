from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.services.upload import assets_upload
from tests.testenv import SAMPLES
from tests.vectors.conftest import failing_queries  # noqa: F401  (the fixture, shared)

SAMPLE_NAMES = ("dog.jpg", "dog-with-person.jpg", "cat.png")


def upload_sample(tenant, user, name: str, **metadata):
    file = SimpleUploadedFile(name, (SAMPLES / name).read_bytes())
    [outcome] = assets_upload(tenant=tenant, uploaded_by=user, files=[file], **metadata)
    assert outcome.error is None, outcome.error
    return outcome.asset


@pytest.fixture
def indexed(transactional_db, acme, bob):
    """Acme's three cookbook pictures, embedded and ready: name -> ImageAsset."""
    return {
        "dog.jpg": upload_sample(acme, bob, "dog.jpg", category="pets", source="cookbook", tags=["dog"]),
        "dog-with-person.jpg": upload_sample(
            acme, bob, "dog-with-person.jpg", category="people", source="cookbook", tags=["dog", "person"]
        ),
        "cat.png": upload_sample(acme, bob, "cat.png", category="pets", source="archive", tags=["cat"]),
    }
