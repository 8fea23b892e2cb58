"""The service's processes on loopback, started, waited for and stopped in one way: a Chroma server,
a throwaway Redis, a Celery worker and beat, gunicorn. The tests' fixtures and the benchmarks'
local stack are built from these."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, processes: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    """Polls `check` until it is true, for at most `timeout` seconds; one of `processes` exiting
    meanwhile fails at once instead of after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: a process it needs exited with {process.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def answers(url: str, status: int) -> bool:
    """Whether `url` answers with `status` now (False while nothing listens there yet)."""
    try:
        return httpx.get(url, timeout=1).status_code == status
    except httpx.HTTPError:
        return False


class LocalServer:
    """A process started in the repository's root with its output appended to `log`, and stopped
    here. A subclass says what to run (`command`) and when it is ready (`alive`). `env` is the
    process's whole environment (None: this process's)."""

    what = "a process"
    ready_within: float = 30
    stop_within: float = 10  # after SIGTERM, before SIGKILL

    def __init__(self, *, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def alive(self) -> bool:
        return self.running

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True, **overrides: str) -> None:
        """Starts the process; `overrides` are environment variables for this start only."""
        env = {**(self.env if self.env is not None else os.environ), **overrides}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, *, watching: Sequence[LocalServer] = ()) -> None:
        """Waits until `alive`; this process or one of `watching` exiting meanwhile fails at once."""
        processes = [server.process for server in (self, *watching) if server.process is not None]
        wait_until(self.alive, self.ready_within, f"{self.what} (log: {self.log})", processes=processes)

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever the process had not written is lost."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_within)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ChromaServer(LocalServer):
    """`chroma run` on a free port with its data in `path`; started again, it keeps both."""

    what = "the Chroma server"

    def __init__(self, path: Path, *, log: Path, config: Path = ROOT / "config" / "chroma.yaml") -> None:
        super().__init__(log=log)
        self.path = path
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "chroma"), "run", str(self.config)]

    def start(self, *, wait: bool = True, **overrides: str) -> None:
        """As `make chroma` starts it: the project's config/chroma.yaml, this port and folder."""
        where = {
            "CHROMA_PERSIST_PATH": str(self.path),
            "CHROMA_PORT": str(self.port),
            "CHROMA_LISTEN_ADDRESS": "127.0.0.1",
        }
        super().start(wait=wait, **where, **overrides)

    def alive(self) -> bool:
        return answers(f"{self.url}/api/v2/heartbeat", 200)


class RedisServer(LocalServer):
    """A throwaway redis-server without persistence: stopping it loses everything, as a crash would."""

    what = "Redis"

    def __init__(self, *, log: Path) -> None:
        super().__init__(log=log)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        ]  # fmt: skip

    def alive(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class S3Server(LocalServer):
    """moto's S3-protocol server on loopback: what the tests use for object storage (in production:
    AWS S3, MinIO, Garage, Ceph RGW). It keeps everything in memory."""

    what = "the S3 server"
    access_key = "test-access-key"
    secret_key = "test-secret-key"  # moto accepts any

    def __init__(self, *, log: Path) -> None:
        super().__init__(log=log)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def alive(self) -> bool:
        return answers(f"{self.url}/moto-api/", 200)

    def settings_for(self, bucket: str) -> dict[str, str]:
        """The settings that put the service's files in `bucket` on this server."""
        return {
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


class CeleryWorker(LocalServer):
    """A real `celery worker --pool=solo` on the queues config/celery.py declares, as `make worker`
    runs it. Ready once it answers a ping sent through this process's Celery app (Django set up, its
    broker the worker's)."""

    what = "the Celery worker"
    ready_within = 120  # loading the model on a busy machine
    stop_within = 30  # a warm shutdown finishes the task in hand

    def __init__(
        self, *, env: Mapping[str, str], log: Path, hostname: str | None = None, loglevel: str = "INFO"
    ) -> None:
        super().__init__(log=log, env=env)
        self.hostname = hostname
        self.loglevel = loglevel

    def command(self) -> list[str]:
        named = ["--hostname", self.hostname] if self.hostname else []
        return [
            str(VENV_BIN / "celery"), "-A", "config", "worker", "--pool=solo", f"--loglevel={self.loglevel}",
            "--without-gossip", "--without-mingle", *named,
        ]  # fmt: skip

    def alive(self) -> bool:
        from config.celery import app

        # A connection of its own: the pooled ones may still point at a Redis that was restarted.
        with app.connection_for_write() as connection:
            return bool(app.control.ping(timeout=0.5, connection=connection))


class CeleryBeat(LocalServer):
    """`celery beat` as deployed, keeping its schedule in `schedule`."""

    what = "celery beat"
    stop_within = 20

    def __init__(self, *, env: Mapping[str, str], log: Path, schedule: Path) -> None:
        super().__init__(log=log, env=env)
        self.schedule = schedule

    def command(self) -> list[str]:
        return [str(VENV_BIN / "celery"), "-A", "config", "beat", "--loglevel=INFO", "--schedule", str(self.schedule)]


class GunicornServer(LocalServer):
    """gunicorn serving the Django project on a free port."""

    what = "gunicorn"
    ready_within = 60

    def __init__(self, *, env: Mapping[str, str], log: Path, workers: int = 1, threads: int = 4) -> None:
        super().__init__(log=log, env=env)
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--threads", str(self.threads),
        ]  # fmt: skip

    def alive(self) -> bool:
        return answers(f"{self.url}/api/v1/images/", 401)  # Django loaded: the API refuses a keyless request


@contextlib.contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """Points the test process's Celery app at another broker. The app caches its connection pool
    and producer pool (`app._pool`, `app.amqp._producer_pool`); dropping them makes the next publish
    build new ones for the new URL, as Celery itself does after a fork."""

    from config.celery import app as celery_app

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
