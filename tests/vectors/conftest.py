"""Fixtures of the index's tests, also used by the search tests (tests/search/conftest.py imports them)."""

from __future__ import annotations

import pytest
from chromadb.errors import InternalError

from vectors import index


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


@pytest.fixture(autouse=True)
def _the_settings_name_the_model():
    """The index's and the embedder's own tests run without a database: the model is the settings'
    (the service asks its database, `ingestion.spaces`, which these tests are not about)."""
    from vectors import embedding

    embedding.configure(active_spec=embedding.ModelSpec.from_settings)
    index.configure(active_space=embedding.current_model_key)
    yield
    from django.apps import apps

    from ingestion.apps import IngestionConfig

    config = apps.get_app_config("ingestion")
    assert isinstance(config, IngestionConfig)
    config.ready()
