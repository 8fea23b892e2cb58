"""The fault tests' own processes and how they drive them. A real Celery worker, Redis and Chroma
server are killed, stopped and restarted under these tests: they are started for this package (the
session's worker and Chroma server are left alone), and while the package runs the test process's
Celery app publishes to the package's Redis.

The worker is configured as in production except where recovery would take too long to wait for:
CELERY_VISIBILITY_TIMEOUT 5 (a task whose worker died is handed out again after 5 s rather than an
hour; one test keeps the hour), EMBED_MAX_ATTEMPTS 2, EMBED_STALE_AFTER_SECONDS 10, and beat sends
the sweep every 10 s.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from ingestion.models import AssetStatus, ImageAsset
from tests.support.processes import CeleryBeat, CeleryWorker, ChromaServer, RedisServer, wait_until
from tests.testenv import OUTPUT, ROOT

VISIBILITY_TIMEOUT = 5
MAX_ATTEMPTS = 2
STALE_AFTER_SECONDS = 10
SWEEP_EVERY_SECONDS = 10
WAIT = 120  # generous: the machine is shared
MEMORY_LIMIT = 250 * 1024 * 1024  # what a worker may use above idle before it is OOM-killed
LOGS = ("faults-redis.log", "faults-chroma-server.log", "faults-celery-worker.log", "faults-celery-beat.log")


class SupervisedWorker(CeleryWorker):
    """The package's worker, started again by the tests as a supervisor would.

    Under a memory limit, a watchdog plays the kernel's OOM killer in a container with that much
    memory to spare: it SIGKILLs the worker once its resident memory grows that far above what it
    held idle. `overrides` are environment variables for one start only; a worker started with
    either is `customised`, and the next test that wants the package's configuration restarts it."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env=env, log=OUTPUT / "faults-celery-worker.log", hostname="faults@%h")
        self.customised = False
        self.oom_kills = 0

    def start(self, *, wait: bool = True, **overrides: str) -> None:
        self.customised = bool(overrides)
        super().start(wait=wait, **overrides)

    def start_under_memory_limit(self, limit: int) -> None:
        """Starts the worker, without waiting for it, watched by the OOM killer's stand-in."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.start(wait=False)
        self.customised = True
        threading.Thread(target=self._enforce_memory_limit, args=(self.process, limit, offset), daemon=True).start()

    def _enforce_memory_limit(self, process: subprocess.Popen[bytes], allowed: int, offset: int) -> None:
        # Measured from the moment the worker reports ready (loading the model peaks higher than an
        # idle worker holds), before it can have taken a task.
        with self.log.open("rb") as handle:
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
    worker: SupervisedWorker
    media: Path
    env: dict[str, str]
    scratch: Path

    @contextlib.contextmanager
    def beat(self) -> Iterator[None]:
        """`celery beat` as deployed, sending the stale-image sweep every SWEEP_EVERY_SECONDS."""
        beat = CeleryBeat(
            env={**self.env, "STALE_SWEEP_SECONDS": str(SWEEP_EVERY_SECONDS)},
            log=OUTPUT / "faults-celery-beat.log",
            schedule=self.scratch / "celerybeat-schedule",
        )
        beat.start()
        try:
            yield
        finally:
            beat.stop()

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


# --- driving it ----------------------------------------------------------------------------------


def picture(seed: int, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> SimpleUploadedFile:
    """A smooth random picture, distinct for each seed; PNGs are decoded in full (no DCT shortcut)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return SimpleUploadedFile(f"picture-{seed}.{fmt.lower()}", buffer.getvalue())


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
