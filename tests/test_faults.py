"""Faults lose nothing. A real Celery worker, Redis and Chroma server are killed, stopped and
restarted under these tests. They are this module's own processes (the session's worker and Chroma
server are left alone), and while the module runs the test process's Celery app publishes to this
module's Redis.

The worker is configured as in production except where recovery would take too long to wait for:
CELERY_VISIBILITY_TIMEOUT 5 (a task whose worker died is handed out again after 5 s rather than an
hour; one test keeps the hour), EMBED_MAX_ATTEMPTS 2, EMBED_STALE_AFTER_SECONDS 10, and beat sends
the sweep every 10 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.urls import reverse
from PIL import Image

from bench._common import free_port, wait_until
from config.celery import app as celery_app
from ingestion.models import AssetStatus, ImageAsset
from search import index
from tenants.models import Membership, Tenant
from tenants.tokens import api_token_create
from tests.conftest import VENV_BIN, ChromaServer, LocalServer, login, web_side, worker_command, worker_env
from tests.factories import UserFactory, png_chunk
from tests.testenv import OUTPUT, ROOT

pytestmark = pytest.mark.stack

VISIBILITY_TIMEOUT = 5
MAX_ATTEMPTS = 2
STALE_AFTER_SECONDS = 10
SWEEP_EVERY_SECONDS = 10
WAIT = 120  # generous: the machine is shared
MEMORY_LIMIT = 250 * 1024 * 1024  # what a worker may use above idle before it is OOM-killed


# --- this module's own processes -----------------------------------------------------------------


class RedisServer(LocalServer):
    """A throwaway redis-server without persistence: stopping it loses everything, as a crash would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        with (OUTPUT / "faults-redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self.alive, 30, "Redis")

    def alive(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class Worker:
    """A `celery worker --pool=solo` process, started again by the tests as a supervisor would.

    With a `memory_limit`, a watchdog plays the kernel's OOM killer in a container with that much
    memory to spare: it SIGKILLs the worker once its resident memory grows that far above what it
    held idle. `overrides` are environment variables for this start only."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.customised = False
        self.oom_kills = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True, memory_limit: int | None = None, **overrides: str) -> None:
        self.customised = memory_limit is not None or bool(overrides)
        log = OUTPUT / "faults-celery-worker.log"
        offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                worker_command("faults@%h"),
                cwd=ROOT,
                env={**self.env, **overrides},
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        if memory_limit is not None:
            args = (self.process, memory_limit, log, offset)
            threading.Thread(target=self._enforce_memory_limit, args=args, daemon=True).start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"the worker exited; see {OUTPUT}/faults-celery-worker.log")
            # A connection of its own: the pooled ones may still point at a Redis that was restarted.
            with celery_app.connection_for_write() as connection:
                return bool(celery_app.control.ping(timeout=0.5, connection=connection))

        wait_until(ready, WAIT, "the fault tests' Celery worker")

    def _enforce_memory_limit(self, process: subprocess.Popen[bytes], allowed: int, log: Path, offset: int) -> None:
        # Measured from the moment the worker reports ready (loading the model peaks higher than an
        # idle worker holds), before it can have taken a task.
        with log.open("rb") as handle:
            handle.seek(offset)
            seen = b""
            while b" ready." not in seen:
                if process.poll() is not None:
                    return
                seen = seen[-64:] + handle.read()
                time.sleep(0.005)
        limit = _rss(process.pid) + allowed
        while process.poll() is None:
            if _rss(process.pid) > limit:
                process.kill()
                self.oom_kills += 1
                return
            time.sleep(0.01)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the task in hand
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class FaultStack:
    redis: RedisServer
    chroma: ChromaServer
    worker: Worker
    media: Path
    env: dict[str, str]
    scratch: Path

    @contextlib.contextmanager
    def beat(self) -> Iterator[None]:
        """`celery beat` as deployed, sending the stale-image sweep every SWEEP_EVERY_SECONDS."""
        with (OUTPUT / "faults-celery-beat.log").open("ab") as log:
            process = subprocess.Popen(
                [str(VENV_BIN / "celery"), "-A", "config", "beat", "--loglevel=INFO",
                 "--schedule", str(self.scratch / "celerybeat-schedule")],
                cwd=ROOT,
                env={**self.env, "STALE_SWEEP_SECONDS": str(SWEEP_EVERY_SECONDS)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def run_fresh(self, script: str) -> str:
        """Runs Python in a new `manage.py shell` on the same database, Redis and Chroma server."""
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@contextlib.contextmanager
def _publishing_to(broker_url: str) -> Iterator[None]:
    """Points the test process's Celery app at another broker. The app caches its connection pool
    and producer pool (`app._pool`, `app.amqp._producer_pool`); dropping them makes the next publish
    build new ones for the new URL, as Celery itself does after a fork."""

    def switch(url: str) -> None:
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    previous = celery_app.conf.broker_url
    switch(broker_url)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            celery_app.pool.force_close_all()
        switch(previous)


@pytest.fixture(scope="module")
def fault_stack(django_db_setup, tmp_path_factory) -> Iterator[FaultStack]:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for log in ("faults-redis.log", "faults-celery-worker.log", "faults-celery-beat.log"):
        (OUTPUT / log).unlink(missing_ok=True)
    scratch = tmp_path_factory.mktemp("faults")
    media = scratch / "media"
    media.mkdir()
    with contextlib.ExitStack() as cleanup:
        redis_server = RedisServer()
        cleanup.callback(redis_server.stop)
        redis_server.start()
        chroma = ChromaServer(scratch / "chroma")
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
        cleanup.enter_context(_publishing_to(redis_server.url))
        worker = Worker(env)
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
    """The whole stack up, the worker as configured for the module."""
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


# --- helpers -------------------------------------------------------------------------------------


def picture(seed: int, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> SimpleUploadedFile:
    """A smooth random picture, distinct for each seed; PNGs are decoded in full (no DCT shortcut)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return SimpleUploadedFile(f"picture-{seed}.{fmt.lower()}", buffer.getvalue())


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of a few hundred kilobytes that takes 4 bytes a pixel to decode."""

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def upload(client, tenant, *files) -> list[ImageAsset]:
    response = client.post(
        reverse("ingestion:upload", args=[tenant.slug]), {"images": list(files)}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 201, response.content
    results = response.json()["results"]
    assert all(r["error"] is None for r in results), results
    return [ImageAsset.objects.get(id=r["image"]["id"]) for r in results]


def wait_until_final(assets, timeout: float = WAIT) -> None:
    ids = [a.id for a in assets]

    def final() -> bool:
        return not ImageAsset.objects.filter(
            id__in=ids, status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING]
        ).exists()

    wait_until(final, timeout, f"{len(ids)} images reaching ready or failed")
    for asset in assets:
        asset.refresh_from_db()


def statuses(assets) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in ImageAsset.objects.filter(id__in=[a.id for a in assets]).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def ids(assets) -> set[str]:
    return {str(a.id) for a in assets}


def within(seconds: float, call):
    """call() in a thread, failing if it has not returned after `seconds` (a hang, not a slow answer)."""
    outcome: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if errors:
        raise errors[0]
    return outcome[0]


def upload_page(client, tenant, *files) -> list[tuple[int, dict]]:
    response = client.post(
        reverse("ingestion:upload", args=[tenant.slug]), {"images": list(files)}, HTTP_ACCEPT="application/json"
    )
    if response.status_code != 201:
        return [(response.status_code, {})]
    return [(201, result["image"]) for result in response.json()["results"]]


def upload_api(client, tenant, *files) -> list[tuple[int, dict]]:
    responses = [client.post(reverse("api:image-list"), {"file": file}) for file in files]
    return [(r.status_code, r.json() if r.status_code == 201 else {}) for r in responses]


# --- the tests -----------------------------------------------------------------------------------


def test_a_poison_image_that_kills_its_worker_ends_failed_and_holds_back_no_other_image(
    faults_without_worker, acme, bob
):
    faults = faults_without_worker
    [poison, good1, broken, good2, good3] = upload(login(bob), acme, *(picture(seed) for seed in range(1, 6)))
    good = [good1, good2, good3]
    # Stored originals that passed validation, yet whose decoding goes wrong in the worker: one needs
    # 400 MB to decode (10000 x 10000 pixels, UPLOAD_MAX_PIXELS), one is cut short.
    Path(poison.file.path).write_bytes(png_bomb(10_000, 10_000))
    Path(broken.file.path).write_bytes(Path(broken.file.path).read_bytes()[:200])

    faults.worker.oom_kills = 0
    faults.worker.start(wait=False, memory_limit=MEMORY_LIMIT)
    everything = [*good, poison, broken]
    deadline = time.monotonic() + 3 * WAIT
    unsettled = [AssetStatus.PENDING, AssetStatus.PROCESSING]
    while ImageAsset.objects.filter(id__in=[a.id for a in everything], status__in=unsettled).exists():
        assert time.monotonic() < deadline, statuses(everything)
        if not faults.worker.running:
            faults.worker.start(wait=False, memory_limit=MEMORY_LIMIT)  # as a supervisor would
        time.sleep(0.2)
    for asset in everything:
        asset.refresh_from_db()

    assert faults.worker.oom_kills == MAX_ATTEMPTS
    assert poison.status == AssetStatus.FAILED
    assert poison.failure_reason == f"Gave up after {MAX_ATTEMPTS} attempts: processing this image kept crashing."
    assert broken.status == AssetStatus.FAILED
    assert broken.failure_reason.startswith("The stored file could not be decoded")
    assert [a.status for a in good] == [AssetStatus.READY] * 3
    assert [a.attempts for a in good] == [2, 2, 2]  # the batch cut short by the crash, then alone
    # none of them waited for the poison's verdict
    assert all(a.embedded_at is not None and a.embedded_at < poison.updated_at for a in good)
    assert index.vector_ids(tenant=acme) == ids(good)


@pytest.mark.parametrize("recovery", ["redelivery", "sweep"])
def test_a_worker_killed_mid_batch_leaves_no_image_behind_and_no_duplicate_vector(
    faults, settings, acme, bob, recovery
):
    count = 32
    settings.EMBED_BATCH_SIZE = count  # one task holds them all
    assets = upload(login(bob), acme, *(picture(seed, size=(1024, 768)) for seed in range(count)))

    deadline = time.monotonic() + WAIT
    while not ImageAsset.objects.filter(id__in=[a.id for a in assets], status=AssetStatus.PROCESSING).exists():
        assert time.monotonic() < deadline, "the worker never claimed the batch"
        time.sleep(0.005)
    faults.worker.kill()
    at_kill = statuses(assets)
    assert at_kill == {AssetStatus.PROCESSING: count}, f"not killed mid-batch: {at_kill}"

    # Restarted as a supervisor would. With a short visibility timeout the broker hands the
    # unacknowledged batch to the new worker; with production's hour it would not for an hour, and
    # the periodic sweep queues the images left processing instead.
    if recovery == "redelivery":
        faults.worker.start()
        wait_until_final(assets)
    else:
        faults.worker.start(CELERY_VISIBILITY_TIMEOUT="3600")
        with faults.beat():
            wait_until_final(assets)
    assert {a.status for a in assets} == {AssetStatus.READY}, [(a.status, a.failure_reason) for a in assets]
    assert index.vector_ids(tenant=acme) == ids(assets)
    assert index.count_vectors(tenant=acme) == count
    # one attempt cut short by the kill, one that finished
    assert {a.attempts for a in assets} == {2}


@pytest.mark.parametrize(
    "door",
    [
        "page",
        "api",
    ],
)
def test_uploads_while_redis_is_down_are_accepted_and_become_ready_once_it_is_back(
    faults, settings, acme, bob, caplog, door
):
    # As deployed, Redis is the cache as well as the broker.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": faults.redis.url}
    }
    if door == "page":
        client, send = login(bob), upload_page
    else:
        _, key = api_token_create(tenant=acme, user=bob, name="faults")
        client, send = Client(HTTP_AUTHORIZATION=f"Token {key}", raise_request_exception=False), upload_api
    faults.redis.stop()
    try:
        answers = within(WAIT, lambda: send(client, acme, picture(11), picture(12)))
    finally:
        faults.redis.start()  # empty: what it held is gone, as after a crash without persistence
    assert [code for code, _ in answers] == [201, 201]
    assert [image["status"] for _, image in answers] == ["pending", "pending"]
    assert "the sweep will queue them later" in caplog.text
    assets = [ImageAsset.objects.get(id=image["id"]) for _, image in answers]

    with faults.beat():
        wait_until_final(assets)
    assert [a.status for a in assets] == [AssetStatus.READY] * 2
    assert index.vector_ids(tenant=acme) == ids(assets)
    assert [a.attempts for a in assets] == [1, 1]


FRESH_CHECK = """
import json
from django.core.management import call_command
from ingestion.models import AssetStatus, ImageAsset
from search import index
from tenants.models import Tenant

found = {}
for tenant in Tenant.objects.all():
    rows = ImageAsset.objects.for_tenant(tenant).filter(status=AssetStatus.READY)
    ready = [str(i) for i in rows.values_list("id", flat=True)]
    vectors = index.fetch_vectors(tenant=tenant, ids=ready)
    nearest = {i: [h.id for h in index.query_vectors(tenant=tenant, embedding=v, limit=1)] for i, v in vectors.items()}
    found[tenant.slug] = {"ready": ready, "vectors": vectors, "nearest": nearest}
print("FOUND " + json.dumps(found))
call_command("reconcile_index", dry_run=True)
"""


def test_chroma_killed_and_restarted_keeps_every_ready_vector_and_queued_work_completes(faults, acme, bob):
    first = upload(login(bob), acme, picture(21), picture(22), picture(23))
    wait_until_final(first)
    assert [a.status for a in first] == [AssetStatus.READY] * 3
    before = index.fetch_vectors(tenant=acme, ids=sorted(ids(first)))

    log = OUTPUT / "faults-celery-worker.log"
    logged = log.stat().st_size
    faults.chroma.process.kill()  # no shutdown: whatever Chroma had not written is lost
    faults.chroma.process.wait(10)
    second = upload(login(bob), acme, picture(24), picture(25))
    wait_until(lambda: b"retry: Retry in" in log.read_bytes()[logged:], WAIT, "the worker retrying without Chroma")
    assert set(statuses(second)) <= {AssetStatus.PENDING, AssetStatus.PROCESSING}  # given back, not failed
    faults.chroma.start()  # same directory, same port
    wait_until_final(second)
    assert [a.status for a in second] == [AssetStatus.READY] * 2
    assert all(a.failure_reason == "" for a in second)

    output = faults.run_fresh(FRESH_CHECK)
    found = json.loads(output.split("FOUND ", 1)[1].splitlines()[0])["acme"]
    assert set(found["ready"]) == ids(first) | ids(second)
    assert set(found["vectors"]) == set(found["ready"])
    assert found["nearest"] == {asset_id: [asset_id] for asset_id in found["ready"]}  # searchable, not just stored
    for asset_id, vector in before.items():
        assert np.allclose(found["vectors"][asset_id], vector, atol=1e-6)
    assert "Would have re-queued 0 images missing from the index, removed 0 orphan vectors" in output


@dataclass
class Snapshot:
    files: dict[str, str]
    rows: set[str]
    tenants: set[str]
    vectors: dict[str, dict[str, list[float]]]


def snapshot(media: Path, tenants: list[Tenant]) -> Snapshot:
    files = {
        str(path.relative_to(media)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(media.rglob("*"))
        if path.is_file()
    }
    vectors = {}
    for tenant in tenants:
        if Tenant.objects.filter(pk=tenant.pk).exists():
            vectors[tenant.slug] = index.fetch_vectors(tenant=tenant, ids=sorted(index.vector_ids(tenant=tenant)))
    return Snapshot(
        files=files,
        rows={str(i) for i in ImageAsset.objects.values_list("id", flat=True)},
        tenants=index.stored_tenant_keys(),
        vectors=vectors,
    )


def files_of(asset: ImageAsset) -> set[str]:
    return {asset.file.name, asset.thumbnail.name}


def test_deleting_an_image_or_a_tenant_removes_its_files_rows_and_vectors_and_nothing_else(
    faults, acme, globex, alice, charlie
):
    ours = upload(login(alice), acme, picture(31), picture(32), picture(33))
    theirs = upload(login(charlie), globex, picture(31), picture(34))  # same bytes as one of ours
    wait_until_final([*ours, *theirs])
    assert {a.status for a in [*ours, *theirs]} == {AssetStatus.READY}
    tenants = [acme, globex]
    before = snapshot(faults.media, tenants)
    assert all(name in before.files for a in [*ours, *theirs] for name in files_of(a))

    # one image through the page
    page_victim = ours[0]
    response = login(alice).post(reverse("search:delete", args=[acme.slug, page_victim.id]))
    assert response.status_code == 302
    after_page = snapshot(faults.media, tenants)
    assert set(before.files) - set(after_page.files) == files_of(page_victim)
    assert after_page.files == {k: v for k, v in before.files.items() if k not in files_of(page_victim)}
    assert after_page.rows == before.rows - {str(page_victim.id)}
    assert after_page.vectors["acme"] == {k: v for k, v in before.vectors["acme"].items() if k != str(page_victim.id)}
    assert after_page.vectors["globex"] == before.vectors["globex"]

    # one image through the API
    api_victim = ours[1]
    _, key = api_token_create(tenant=acme, user=alice, name="faults")
    response = Client().delete(reverse("api:image-detail", args=[api_victim.id]), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 204, response.content
    after_api = snapshot(faults.media, tenants)
    assert after_api.files == {k: v for k, v in after_page.files.items() if k not in files_of(api_victim)}
    assert after_api.rows == after_page.rows - {str(api_victim.id)}
    assert set(after_api.vectors["acme"]) == set(after_page.vectors["acme"]) - {str(api_victim.id)}
    assert after_api.vectors["globex"] == before.vectors["globex"]

    # the whole tenant, by an operator in the admin
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    response = login(operator).post(reverse("admin:tenants_tenant_delete", args=[acme.pk]), {"post": "yes"})
    assert response.status_code == 302
    after_tenant = snapshot(faults.media, tenants)
    assert not (faults.media / "tenants" / str(acme.vector_uuid)).exists()
    assert after_tenant.files == {
        k: v for k, v in after_api.files.items() if not k.startswith(f"tenants/{acme.vector_uuid}/")
    }
    assert after_tenant.rows == after_api.rows - ids(ours)
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert not Membership.objects.filter(tenant_id=acme.pk).exists()
    assert after_tenant.tenants == before.tenants - {acme.vector_key}
    assert after_tenant.vectors == {"globex": before.vectors["globex"]}
