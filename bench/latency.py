"""Upload to searchable: one image uploaded through the REST API with an idle worker, timed until a
text search returns it. Starts its own Chroma server, Celery worker and gunicorn against
PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL). `python -m bench.latency [--runs 15]`"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench._common import ROOT, machine, make_photos, median, percentile, setup_django

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not start within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch_bench")
    import psycopg

    name = database.rsplit("/", 1)[1]
    with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    chroma_port, web_port = free_port(), free_port()
    workdir = setup_django(
        DATABASE_URL=database,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        CHROMA_URL=f"http://127.0.0.1:{chroma_port}",
        TASKS_IN_PROCESS="0",
    )
    import httpx
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from PIL import Image

    from tenants.services import tenant_create
    from tenants.tokens import api_token_create

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    user = get_user_model().objects.create_user("bench")
    tenant = tenant_create(slug="bench", name="Bench", owner=user)
    _, key = api_token_create(tenant=tenant, user=user, name="bench")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    logs = (workdir / "logs").open("ab")
    processes = [
        subprocess.Popen([str(VENV_BIN / "chroma"), "run", "--path", str(workdir / "chroma"), "--host", "127.0.0.1", "--port", str(chroma_port)], stdout=logs, stderr=logs),
        subprocess.Popen([str(VENV_BIN / "celery"), "-A", "config", "worker", "--pool=solo", "-Q", "ingestion,interactive", "--without-gossip", "--without-mingle", "--loglevel=WARNING"], cwd=ROOT, env=env, stdout=logs, stderr=logs),
        subprocess.Popen([str(VENV_BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "1", "--threads", "4"], cwd=ROOT, env=env, stdout=logs, stderr=logs),
    ]  # fmt: skip
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{web_port}", headers={"Authorization": f"Token {key}"}, timeout=30
        )
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat").status_code == 200, 30, "Chroma"
        )
        wait_until(lambda: api.get("/api/v1/images/").status_code == 200, 60, "gunicorn")
        from config.celery import app

        wait_until(lambda: bool(app.control.ping(timeout=0.5)), 120, "the Celery worker")
        photos = [p for p in make_photos(12) if Image.open(p).width * Image.open(p).height <= 4_500_000]
        timings = []
        for run in range(args.runs + 1):  # the first run warms the web process's text tower
            image = Image.open(photos[run % len(photos)]).rotate(run * 7)  # new bytes every run
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=88)
            started = time.perf_counter()
            response = api.post("/api/v1/images/", files={"file": (f"run-{run}.jpg", buffer.getvalue(), "image/jpeg")})
            response.raise_for_status()
            image_id = response.json()["id"]
            while True:
                found = api.get("/api/v1/search/", params={"q": "a photo", "limit": settings.SEARCH_MAX_LIMIT}).json()
                if any(row["id"] == image_id for row in found["results"]):
                    break
                if time.perf_counter() - started > 60:
                    raise TimeoutError(f"image {image_id} not searchable after 60 s")
                time.sleep(0.02)
            if run:
                timings.append(time.perf_counter() - started)
                print(f"  run {run}: {timings[-1] * 1000:.0f} ms")
            time.sleep(0.5)  # the worker is idle again before the next upload
        print(f"machine: {machine()}")
        print(f"upload to searchable (API upload of a 2-4 MP JPEG, idle worker, Chroma server, PostgreSQL, Redis): "
              f"p50 {median(timings) * 1000:.0f} ms, p95 {percentile(timings, 95) * 1000:.0f} ms over {len(timings)} runs")  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)


if __name__ == "__main__":
    main()
