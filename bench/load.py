"""A bounded load test on loopback: several tenants' API clients upload images and search at the same
time against the deployed shape (gunicorn, a Celery worker, a Chroma server, PostgreSQL, Redis),
then every accepted image is waited for. Prints requests/s and latency per kind of request, and
exits non-zero on any server error, lost image or result from another tenant.
`python -m bench.load [--duration 120] [--tenants 3] [--clients 6]`"""

from __future__ import annotations

import argparse
import functools
import io
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bench._common import local_stack, machine, median, percentile

TEXTS = ["a photo of a dog", "a red car", "mountains at dawn", "a cat on a sofa", "people at a table"]
CATEGORIES = ["", "pets", "travel", "food"]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: list[str] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    returned: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant slug, kind, image id)
    accepted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def jpeg(rng: random.Random) -> bytes:
    """A small unique photo-like JPEG: smooth colour gradients plus noise, 0.3 to 1 megapixel."""
    from PIL import Image, ImageFilter

    width, height = rng.choice([(640, 480), (800, 600), (1024, 768), (1200, 800)])
    base = Image.new("RGB", (8, 6))
    base.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])  # type: ignore[misc]
    image = base.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), rng.uniform(10, 40)).convert("RGB")
    image = Image.blend(image, noise, 0.15).filter(ImageFilter.SMOOTH)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def client_loop(base_url: str, tenant: str, key: str, seed: int, deadline: float, tally: Tally) -> None:
    import httpx

    rng = random.Random(seed)
    api = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {key}"}, timeout=60)
    own = tally.accepted[tenant]
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.35:
            kind = "upload"
            files = {"file": (f"load-{seed}-{rng.randrange(10**9)}.jpg", jpeg(rng), "image/jpeg")}
            data = {"category": rng.choice(CATEGORIES), "tags": rng.choice(["", "load", "load,test"])}
            request = functools.partial(api.post, "/api/v1/images/", files=files, data=data)
        elif roll < 0.75:
            kind = "search"
            params = {"q": rng.choice(TEXTS), "limit": rng.choice([10, 50])}
            if rng.random() < 0.3:
                params["category"] = rng.choice(CATEGORIES[1:])
            request = functools.partial(api.get, "/api/v1/search/", params=params)
        elif roll < 0.9 and own:
            kind = "similar"
            with tally.lock:
                image_id = rng.choice(sorted(own))
            request = functools.partial(api.get, f"/api/v1/images/{image_id}/similar/")
        else:
            kind = "list"
            request = functools.partial(api.get, "/api/v1/images/", params={"page_size": 50})
        started = time.perf_counter()
        try:
            response = request()
        except httpx.HTTPError as exc:
            with tally.lock:
                tally.server_errors.append(f"{kind}: {exc!r}")
            continue
        elapsed = time.perf_counter() - started
        with tally.lock:
            tally.latencies[kind].append(elapsed)
            if response.status_code >= 500:
                tally.server_errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
                continue
            if response.status_code >= 400:
                tally.refused[response.status_code] += 1  # e.g. 409 similar on an image not embedded yet
                continue
            body = response.json()
            if kind == "upload":
                own.add(body["id"])
                continue
            # Checked against the database after the run: an image of this tenant uploaded by
            # another client may be listed before its upload's response arrives.
            tally.returned.extend((tenant, kind, row["id"]) for row in body.get("results", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load")
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--clients", type=int, default=6, help="concurrent API clients, spread over the tenants")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (4 threads each)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument(
        "--drain-timeout", type=float, default=300, help="seconds to wait for the uploads to be embedded"
    )
    args = parser.parse_args()

    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch_load")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    with local_stack(
        database=database, redis_url=redis_url, web_workers=args.web_workers, model=args.model
    ) as base_url:
        import httpx
        from django.contrib.auth import get_user_model

        from ingestion.models import AssetStatus, ImageAsset
        from tenants.models import Tenant
        from tenants.services import tenant_create
        from tenants.tokens import api_token_create
        from vectors import index

        keys = {}
        for number in range(args.tenants):
            user = get_user_model().objects.create_user(f"load-{number}")
            tenant = tenant_create(slug=f"load-{number}", name=f"Load {number}", owner=user)
            keys[tenant.slug] = api_token_create(tenant=tenant, user=user, name="load")[1]
        tally = Tally()
        slugs = list(keys)
        warm = [
            threading.Thread(target=lambda key=key: httpx.get(f"{base_url}/api/v1/search/", params={"q": "warm up"}, headers={"Authorization": f"Token {key}"}, timeout=120))
            for key in list(keys.values()) * 4 * args.web_workers
        ]  # fmt: skip
        for thread in warm:  # every web process loads its text tower before the clock starts
            thread.start()
        for thread in warm:
            thread.join()
        deadline = time.monotonic() + args.duration
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=client_loop,
                args=(base_url, slugs[i % len(slugs)], keys[slugs[i % len(slugs)]], i, deadline, tally),
            )
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started

        accepted = {image_id for ids in tally.accepted.values() for image_id in ids}
        drain_started = time.perf_counter()
        while time.perf_counter() - drain_started < args.drain_timeout:
            waiting = ImageAsset.objects.filter(id__in=accepted).exclude(status=AssetStatus.READY)
            if not waiting.filter(status__in=[AssetStatus.PENDING, AssetStatus.PROCESSING]).exists():
                break
            time.sleep(0.5)
        drained = time.perf_counter() - drain_started
        statuses = {
            str(pk): status for pk, status in ImageAsset.objects.filter(id__in=accepted).values_list("id", "status")
        }
        lost = [i for i in accepted if statuses.get(i) != AssetStatus.READY]
        owners = {
            str(pk): slug
            for pk, slug in ImageAsset.objects.filter(id__in={i for _, _, i in tally.returned}).values_list(
                "id", "tenant__slug"
            )
        }
        cross_tenant = [
            f"{kind} for {slug} returned {image_id} of {owners.get(image_id, 'no tenant')}"
            for slug, kind, image_id in tally.returned
            if owners.get(image_id) != slug
        ]
        vector_gaps = []
        for slug, ids in tally.accepted.items():
            tenant = Tenant.objects.get(slug=slug)
            stored = set(index.vector_ids(tenant=tenant))
            if stored != ids:
                vector_gaps.append(f"{slug}: {len(ids - stored)} vectors missing, {len(stored - ids)} unexpected")

        total = sum(len(v) for v in tally.latencies.values())
        print(f"machine: {machine()}")
        print(
            f"load: {args.clients} clients over {args.tenants} tenants for {wall:.0f} s; gunicorn {args.web_workers}x4 "
            f"threads, 1 Celery worker, Chroma server, PostgreSQL, Redis, all on this machine"
        )
        print(f"requests  {total} in {wall:.0f} s = {total / wall:.1f} requests/s")
        for kind in ("upload", "search", "similar", "list"):
            values = tally.latencies.get(kind, [])
            if values:
                print(
                    f"  {kind:8} {len(values):5} requests, p50 {median(values) * 1000:.0f} ms, "
                    f"p95 {percentile(values, 95) * 1000:.0f} ms"
                )
        print(f"refused (4xx) {dict(tally.refused) or 0}")
        print(f"accepted images {len(accepted)}, embedded within {drained:.0f} s after the load")
        print(f"server errors {len(tally.server_errors)}")
        print(f"lost images {len(lost)}")
        print(f"cross-tenant results {len(cross_tenant)} (of {len(tally.returned)} results checked)")
        print(f"vector mismatches {len(vector_gaps)}")
        problems = tally.server_errors[:5] + [f"lost {i}" for i in lost[:5]] + cross_tenant[:5] + vector_gaps
        for problem in problems:
            print(f"  ! {problem}")
        if problems:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
