from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from config.celery import app as celery_app
from tenants.models import Role, Tenant
from tenants.services import membership_set, tenant_create
from tenants.tokens import api_token_create
from tests.factories import PASSWORD, UserFactory
from tests.support.processes import CeleryWorker, ChromaServer, wait_until
from tests.testenv import OUTPUT, SAMPLES
from vectors import index

# --- the tiers: `pytest --fast` runs the `fast_tier` of pyproject.toml, `pytest` everything -------

STACK_FIXTURES = {"stack", "chroma_server", "celery_worker_process", "fault_stack"}  # each starts processes
FAST_TIER_BUDGET = 120  # seconds
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser) -> None:
    parser.addini("fast_tier", "the marker expression that selects the fast tier (`pytest --fast`)")
    parser.addoption("--fast", action="store_true", help="run the fast tier only (the `fast_tier` ini setting)")


def pytest_configure(config) -> None:
    if config.getoption("fast"):
        chosen = config.option.markexpr
        tier = config.getini("fast_tier")
        config.option.markexpr = f"({tier}) and ({chosen})" if chosen else tier


@pytest.hookimpl(tryfirst=True)  # before the `-m` selection reads the markers
def pytest_collection_modifyitems(items) -> None:
    # A test that needs the stack's processes is in the stack tier whether or not its module says so.
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


def pytest_sessionstart(session) -> None:
    session.config.stash[_STARTED] = time.monotonic()


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The fast tier's time against its budget; over it, the tests to mark `slow` first."""
    if not config.getoption("fast"):
        return
    wall = time.monotonic() - config.stash[_STARTED]
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    budget = f"budget {FAST_TIER_BUDGET} s on 2 idle cores"
    terminalreporter.write_line(f"fast tier: {wall:.0f} s, {cpu:.0f} s of CPU ({budget})")
    if wall > FAST_TIER_BUDGET:
        spent: dict[str, float] = {}
        for report in (r for reports in terminalreporter.stats.values() for r in reports):
            if hasattr(report, "duration") and hasattr(report, "nodeid"):
                spent[report.nodeid] = spent.get(report.nodeid, 0.0) + report.duration
        terminalreporter.write_line("over budget (a busy machine, or tests to mark `slow`); the slowest:")
        for nodeid, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:10]:
            terminalreporter.write_line(f"  {seconds:5.1f} s  {nodeid}")


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # Real hashing costs ~0.5 s a login; the hasher is not what these tests are about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A fresh cache per test: failure counters (rate limits) must not leak from one test to the next.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture(autouse=True)
def _webhooks_reach_this_machine_only(monkeypatch):
    """Whatever a test or a fuzzer registers, webhook deliveries in the tests connect to loopback only."""
    from webhooks import addresses, services

    def loopback_only(host: str, port: int) -> str:
        address = addresses.connect_address(host, port)
        if not ipaddress.ip_address(address).is_loopback:
            raise addresses.AddressRefused(f"the tests send webhooks to this machine only, not to {address}")
        return address

    monkeypatch.setattr(services, "connect_address", loopback_only)


@pytest.fixture
def media_files(settings) -> Callable[[], list[Path]]:
    """Every file under MEDIA_ROOT, to prove a refused upload stored nothing."""

    def listing() -> list[Path]:
        root = Path(settings.MEDIA_ROOT)
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    return listing


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def vera(db):
    return UserFactory(username="vera")


@pytest.fixture
def charlie(db):
    return UserFactory(username="charlie")


@pytest.fixture
def acme(alice, bob, vera) -> Tenant:
    """Alice owns Acme, Bob is a member, Vera a viewer."""
    tenant = tenant_create(slug="acme", name="Acme", owner=alice)
    membership_set(tenant=tenant, user=bob, role=Role.MEMBER)
    membership_set(tenant=tenant, user=vera, role=Role.VIEWER)
    return tenant


@pytest.fixture
def globex(charlie) -> Tenant:
    """Charlie owns Globex and has nothing to do with Acme."""
    return tenant_create(slug="globex", name="Globex", owner=charlie)


def api(user, tenant, scheme: str = "Token") -> APIClient:
    """An API client holding a fresh key of `user` in `tenant`."""
    _, key = api_token_create(tenant=tenant, user=user, name="tests")
    return keyed_client(key, scheme)


def keyed_client(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def sample() -> Callable[[str], SimpleUploadedFile]:
    def read(name: str) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, (SAMPLES / name).read_bytes())

    return read


# --- the full local stack: a Chroma server and a Celery worker process ---------------------------


def refuse_in_fast_tier(request, what: str) -> None:
    """The fast tier starts no server process: a test that reaches one there is missing its marker."""
    if request.config.getoption("fast"):
        pytest.fail(f"the fast tier starts no {what}: mark the test that needs it `stack`")


@pytest.fixture(scope="session")
def chroma_server(request, tmp_path_factory) -> Iterator[ChromaServer]:
    refuse_in_fast_tier(request, "Chroma server")
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"), log=OUTPUT / "chroma-server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-media")


def worker_env(*, chroma_url: str, media: Path, **extra: str) -> dict[str, str]:
    """A worker process's environment: the test database, the given Chroma server and files."""
    db = django_settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "TASKS_IN_PROCESS": "0",
        "CHROMA_URL": chroma_url,
        "MEDIA_ROOT": str(media),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "WEBHOOK_ALLOW_PRIVATE": "1",  # the tests' webhook receivers are on loopback
        **extra,
    }


@contextlib.contextmanager
def web_side(settings, *, chroma_url: str, media: Path) -> Iterator[None]:
    """This test's web side as deployed: tasks go to the broker, vectors to the Chroma server,
    files to the workers' media folder."""
    settings.EMBED_RUNNER = "celery"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CHROMA_URL = chroma_url
    settings.MEDIA_ROOT = media
    celery_app.conf.task_always_eager = False
    index.reset_connection()
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = True
        index.reset_connection()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, chroma_server, stack_media) -> Iterator[CeleryWorker]:
    """A real `celery worker` process on the test database, Redis and the Chroma server."""
    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
    worker = CeleryWorker(
        env=worker_env(chroma_url=chroma_server.url, media=stack_media),
        log=OUTPUT / "celery-worker.log",
        hostname="tests@%h",
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def stack(settings, transactional_db, celery_worker_process, chroma_server, stack_media) -> Iterator[ChromaServer]:
    """This test's web side talks to the same Redis, Chroma server and files as the worker."""
    with web_side(settings, chroma_url=chroma_server.url, media=stack_media):
        yield chroma_server


def wait_for_status(asset, statuses: set[str], timeout: float = 60) -> None:
    def done() -> bool:
        asset.refresh_from_db()
        return asset.status in statuses

    wait_until(done, timeout, f"image {asset.id} reaching {statuses}")


@pytest.fixture(scope="session", autouse=True)
def _clean_output() -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in ("chroma-server.log", "celery-worker.log"):
        (OUTPUT / name).unlink(missing_ok=True)
    shutil.rmtree(OUTPUT / "screenshots", ignore_errors=True)


@pytest.fixture(autouse=True)
def _each_test_reads_the_active_model_afresh():
    """What a process keeps of the active model (`ingestion.spaces`) must not outlive the test that
    switched it: its database rows do not."""
    from ingestion import spaces

    spaces.refresh()
    yield
    spaces.refresh()
