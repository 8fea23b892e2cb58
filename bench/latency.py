"""Upload to searchable: one image uploaded through the REST API with an idle worker, timed until a
text search returns it. Starts its own Chroma server, Celery worker and gunicorn against
PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL). `python -m bench.latency [--runs 15]`"""

from __future__ import annotations

import argparse
import io
import os
import time

from bench._common import local_stack, machine, make_photos, median, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    with local_stack(database=database, redis_url=redis_url) as base_url:
        timings = upload_to_searchable(base_url, runs=args.runs)
        print(f"machine: {machine()}")
        print(f"upload to searchable (API upload of a 2-4 MP JPEG, idle worker, Chroma server, PostgreSQL, Redis): "
              f"p50 {median(timings) * 1000:.0f} ms, p95 {percentile(timings, 95) * 1000:.0f} ms over {len(timings)} runs")  # fmt: skip


def upload_to_searchable(base_url: str, *, runs: int, slug: str = "bench") -> list[float]:
    """Seconds from each upload sent (one 2-4 MP JPEG through the API, the worker idle) until a text
    search through the API returns it, for `runs` uploads to a new tenant, after one that warms up."""
    import httpx
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from PIL import Image

    from tenants.services import tenant_create
    from tenants.tokens import api_token_create

    user = get_user_model().objects.create_user(slug)
    tenant = tenant_create(slug=slug, name=slug.title(), owner=user)
    _, key = api_token_create(tenant=tenant, user=user, name="bench")
    api = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {key}"}, timeout=30)
    photos = [p for p in make_photos(12) if Image.open(p).width * Image.open(p).height <= 4_500_000]
    timings = []
    for run in range(runs + 1):  # the first run warms the web process's text tower
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
            print(f"  run {run}: {timings[-1] * 1000:.0f} ms", flush=True)
        time.sleep(0.5)  # the worker is idle again before the next upload
    return timings


if __name__ == "__main__":
    main()
