"""The fault tests' stack: Redis, a Chroma server and a worker of their own, started once for the
package (see harness.py), and each test's web side pointed at them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.conftest import refuse_in_fast_tier, web_side, worker_env
from tests.faults.harness import (
    LOGS,
    MAX_ATTEMPTS,
    STALE_AFTER_SECONDS,
    VISIBILITY_TIMEOUT,
    FaultStack,
    SupervisedWorker,
)
from tests.support.processes import ChromaServer, RedisServer, publishing_to
from tests.testenv import OUTPUT


@pytest.fixture(scope="package")
def fault_stack(request, django_db_setup, tmp_path_factory) -> Iterator[FaultStack]:
    refuse_in_fast_tier(request, "fault stack")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for log in LOGS:
        (OUTPUT / log).unlink(missing_ok=True)
    scratch = tmp_path_factory.mktemp("faults")
    media = scratch / "media"
    media.mkdir()
    with contextlib.ExitStack() as cleanup:
        redis_server = RedisServer(log=OUTPUT / "faults-redis.log")
        cleanup.callback(redis_server.stop)
        redis_server.start()
        chroma = ChromaServer(scratch / "chroma", log=OUTPUT / "faults-chroma-server.log")
        cleanup.callback(chroma.stop)
        chroma.start()
        env = worker_env(
            chroma_url=chroma.url,
            media=media,
            REDIS_URL=redis_server.url,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
            EMBED_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
            EMBED_STALE_AFTER_SECONDS=str(STALE_AFTER_SECONDS),
        )
        cleanup.enter_context(publishing_to(redis_server.url))
        worker = SupervisedWorker(env)
        cleanup.callback(worker.stop)
        yield FaultStack(redis=redis_server, chroma=chroma, worker=worker, media=media, env=env, scratch=scratch)


@contextlib.contextmanager
def _web_side(settings, stack: FaultStack) -> Iterator[FaultStack]:
    """Redis and Chroma up, and this test's web side on them and on the worker's files."""
    if not stack.redis.alive():
        stack.redis.start()
    if not stack.chroma.alive():
        stack.chroma.start()
    with web_side(settings, chroma_url=stack.chroma.url, media=stack.media):
        yield stack


@pytest.fixture
def faults(settings, transactional_db, fault_stack) -> Iterator[FaultStack]:
    """The whole stack up, the worker as configured for the package."""
    with _web_side(settings, fault_stack) as stack:
        if stack.worker.customised:
            stack.worker.stop()
        if stack.worker.running:
            stack.worker.wait_ready()
        else:
            stack.worker.start()
        yield stack


@pytest.fixture
def faults_without_worker(settings, transactional_db, fault_stack) -> Iterator[FaultStack]:
    """The stack with no worker running: uploads queue their batches."""
    with _web_side(settings, fault_stack) as stack:
        stack.worker.stop()
        yield stack
