from __future__ import annotations

import pytest
from chromadb.errors import InternalError
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.services import assets_upload
from search import index
from tests.testenv import SAMPLES

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


class CollectionFailingQueries:
    """A real collection whose next `failures` queries fail as Chroma's server (1.5) fails one that
    races its own writer persisting a collection's first HNSW files: seen under the load test, too
    rare (2 of 7,500 queries) to provoke on demand."""

    RACE = "Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk"

    def __init__(self, collection, failures: int, message: str = RACE) -> None:
        self.collection, self.failures, self.message = collection, failures, message

    def __getattr__(self, name):
        return getattr(self.collection, name)

    def query(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise InternalError(self.message)
        return self.collection.query(**kwargs)


@pytest.fixture
def failing_queries():
    """Makes a tenant's next queries fail inside Chroma: `failing_queries(tenant, failures[, message])`."""

    def install(tenant, failures: int, **options) -> CollectionFailingQueries:
        flaky = CollectionFailingQueries(index._collection(tenant), failures, **options)
        index._collections[index.collection_name(tenant)] = flaky  # type: ignore[assignment]
        return flaky

    yield install
    index.reset_connection()
