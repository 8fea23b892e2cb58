"""Ingest through the REST API, the way an integration uploads: one JPEG per request, from 1 and from
several concurrent clients, timed from the first upload to the last image searchable, against
Chroma's reference pipeline (`ImageLoader` + `OpenCLIPEmbeddingFunction`, fp32, one image at a time,
one `add` per image to the same Chroma server) in the same run. The stack is the deployed shape,
started here on loopback: gunicorn, one Celery worker, a Chroma server, PostgreSQL and Redis
(BENCH_DATABASE_URL, BENCH_REDIS_URL).

It also prints the worker's own embedding rate, against the model-only rate `bench.ingest` prints
(measured here, the same way): during the runs (claim to ready, per batch) and on a backlog (the
worker's consumer paused while the uploads arrive, then resumed; the model alone measured just
before and after each backlog); what each process spent in CPU per image; what an upload and the
reference cost per image, step by step, on one thread; and the ceiling those steps and the model's
forward pass, as run here, set on these cores, with nothing else to do.
`python -m bench.api_ingest [--photos 48,200] [--clients 1,4] [--repeats 3] [--quick]`"""

from __future__ import annotations

import argparse
import io
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._common import local_stack, machine, make_photos, median, percentile, stopwatch
from bench.ingest import worker_call_rate

POLL_SECONDS = 0.02


@dataclass
class Run:
    photos: int
    clients: int
    seconds: float  # first upload sent to last image searchable (its row ready, its vector written)
    uploads_seconds: float  # first upload sent to last upload answered
    upload_latencies: list[float]
    batches: list[tuple[int, float]]  # per claim: images, seconds from claimed to ready
    cpu: dict[str, float]  # CPU seconds by process kind during the run

    @property
    def rate(self) -> float:
        return self.photos / self.seconds

    @property
    def worker_rate(self) -> float:
        """Images/s while the worker held a claim: what it embeds when it has work."""
        return sum(n for n, _ in self.batches) / sum(s for _, s in self.batches)


@dataclass
class Watch:
    """What polling the database saw of one tenant's images: when each claim (its task's id) was
    first seen holding images in processing."""

    first_seen: dict[str, float] = field(default_factory=dict)


KINDS = ((b"gunicorn", "web"), (b"celery", "worker"), (b"chroma", "chroma"))


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and the stack it started, by kind, and
    of the whole machine ("machine": every core, every process, PostgreSQL and Redis included)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in mine]
        mine.update(children)
        frontier.extend(children)
    totals: dict[str, float] = defaultdict(float)
    for pid in mine:
        command = commands.get(pid, b"")
        kind = next((kind for word, kind in KINDS if word in command), "other")
        totals["bench" if pid == os.getpid() else kind] += used.get(pid, 0.0)
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in values[:8]]
    totals["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / tick  # all but idle and iowait
    return dict(totals)


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = cpu_seconds()
    return {kind: after.get(kind, 0.0) - before.get(kind, 0.0) for kind in after}


def upload_all(
    base_url: str, key: str, photos: list[tuple[str, bytes]], clients: int, latencies: list[float], ids: list[str]
) -> None:
    """Uploads every photo, one per request, from `clients` threads taking the next photo in turn."""
    import httpx

    lock = threading.Lock()
    order = iter(range(len(photos)))
    ids.extend([""] * len(photos))
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {key}"}, timeout=120) as api:
            while not errors:
                with lock:
                    number = next(order, None)
                if number is None:
                    return
                name, data = photos[number]
                started = time.perf_counter()
                response = api.post("/api/v1/images/", files={"file": (name, data, "image/jpeg")})
                elapsed = time.perf_counter() - started
                if response.status_code != 201:
                    errors.append(f"{name}: {response.status_code} {response.text[:300]}")
                    return
                with lock:
                    latencies.append(elapsed)
                    ids[number] = response.json()["id"]

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"uploads refused: {errors[:3]}")


def wait_ready(tenant: Any, count: int, *, timeout: float, watch: Watch | None = None) -> float:
    """Polls the database until `count` images of `tenant` are ready; returns the wall-clock time
    (time.time()) the last one became ready. With `watch`, records when each claim was first seen
    processing. A failed image fails the benchmark."""
    from django.db.models import Count

    from ingestion.models import AssetStatus, ImageAsset

    rows = ImageAsset.objects.filter(tenant=tenant)
    # One query a poll (the states, and the claims holding images): the instrument stays light on
    # the cores it measures. The end time is read from the rows, not from the poll's clock.
    by_state = rows.order_by().values_list("status", "claim_token").annotate(n=Count("id"))
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        counts: dict[str, int] = defaultdict(int)
        for status, token, n in by_state.all():  # a fresh query each time (a queryset caches its rows)
            counts[status] += n
            if watch is not None and status == AssetStatus.PROCESSING:
                watch.first_seen.setdefault(token, now)
        if counts.get(AssetStatus.FAILED):
            reasons = list(rows.filter(status=AssetStatus.FAILED).values_list("failure_reason", flat=True)[:3])
            raise RuntimeError(f"{counts[AssetStatus.FAILED]} images failed: {reasons}")
        if counts.get(AssetStatus.READY, 0) >= count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{counts} of {count} images after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    last = max(rows.values_list("embedded_at", flat=True))
    return float(last.timestamp())


def batches_of(tenant: Any, watch: Watch) -> list[tuple[int, float]]:
    """(images, seconds from claimed to ready) per claim of the tenant's images. A claim that came
    and went between two polls counts half a poll interval."""
    from django.db.models import Count, Max

    from ingestion.models import ImageAsset

    result = []
    claims = (
        ImageAsset.objects.filter(tenant=tenant)
        .order_by()
        .values("claim_token")
        .annotate(n=Count("id"), end=Max("embedded_at"))
    )
    for claim in claims:
        end = claim["end"].timestamp()
        seen = watch.first_seen.get(claim["claim_token"])
        result.append((claim["n"], end - seen if seen is not None else POLL_SECONDS / 2))
    return result


def new_tenant(label: str) -> tuple[Any, str]:
    from django.contrib.auth import get_user_model

    from tenants.services import tenant_create
    from tenants.tokens import api_token_create

    user = get_user_model().objects.create_user(label)
    tenant = tenant_create(slug=label, name=label, owner=user, quota_bytes=1 << 40)
    return tenant, api_token_create(tenant=tenant, user=user, name="bench")[1]


def ours_through_api(base_url: str, photos: list[tuple[str, bytes]], clients: int, label: str, timeout: float) -> Run:
    tenant, key = new_tenant(label)
    latencies: list[float] = []
    ids: list[str] = []
    watch = Watch()
    before = cpu_seconds()
    started = time.time()
    uploads_done: list[float] = []

    def upload() -> None:
        upload_all(base_url, key, photos, clients, latencies, ids)
        uploads_done.append(time.time())

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        last_ready = wait_ready(tenant, len(photos), timeout=timeout, watch=watch)
    finally:
        uploader.join()
    cpu = cpu_since(before)
    if not uploads_done:
        raise RuntimeError("the uploads did not finish")
    return Run(
        photos=len(photos),
        clients=clients,
        seconds=last_ready - started,
        uploads_seconds=uploads_done[0] - started,
        upload_latencies=latencies,
        batches=batches_of(tenant, watch),
        cpu=cpu,
    )


def worker_backlog(base_url: str, photos: list[tuple[str, bytes]], label: str, timeout: float) -> tuple[float, float]:
    """The worker's rate on a backlog: its consumer paused (Celery's remote control) while the
    photos are uploaded, then resumed; timed from the resume to the last image ready. Returns
    (images/s, the worker's CPU seconds per image)."""
    from config.celery import QUEUE_INGESTION, app

    tenant, key = new_tenant(label)
    if not app.control.cancel_consumer(QUEUE_INGESTION, reply=True, timeout=10):
        raise RuntimeError("the worker did not answer cancel_consumer")
    try:
        upload_all(base_url, key, photos, 4, [], [])
    finally:
        before = cpu_seconds()
        resumed = time.time()
        if not app.control.add_consumer(QUEUE_INGESTION, reply=True, timeout=10):
            raise RuntimeError("the worker did not answer add_consumer")
    last_ready = wait_ready(tenant, len(photos), timeout=timeout)
    cpu = cpu_since(before)
    return len(photos) / (last_ready - resumed), cpu.get("worker", 0.0) / len(photos)


def model_only(embedder: Any) -> tuple[float, float]:
    """The image tower alone through the worker's call, as `bench.ingest` measures it, in this
    process with the stack idle: (images/s, CPU seconds per image)."""
    cpu, calls = time.process_time(), 5
    rate = worker_call_rate(embedder, embedder.batch_size, calls)
    return rate, (time.process_time() - cpu) / ((1 + calls) * embedder.batch_size)


def reference_run(client: Any, reference: Any, paths: list[Path], name: str) -> tuple[float, float, list[float]]:
    """Chroma's pipeline, one image at a time as one file per request, into a fresh collection of the
    Chroma server: each image read by `ImageLoader`, embedded by `OpenCLIPEmbeddingFunction` and
    added with its vector and uri. (The loader and function are called here, as `add(uris=...)` calls
    them, because chromadb 1.5.9's `add` on a collection made with the function also rebuilds the
    function from the collection's schema on every call, loading the model twice: `as_written`
    measures that.) Returns (images/s, this process's CPU seconds per image, seconds of each image)."""
    from chromadb.utils.data_loaders import ImageLoader

    loader = ImageLoader()
    collection = client.create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    cpu, each = time.process_time(), []
    with stopwatch() as elapsed:
        for number, path in enumerate(paths):
            uri = str(path)
            with stopwatch() as one:
                collection.add(ids=[f"ref-{number}"], embeddings=reference(loader([uri])), uris=[uri])
            each.append(one())
    return len(paths) / elapsed(), (time.process_time() - cpu) / len(paths), each


def as_written(client: Any, reference: Any, paths: list[Path]) -> float:
    """Seconds per image of Chroma's pipeline as its documentation writes it, `add(uris=[one])` on a
    collection made with the embedding function and the image loader."""
    from chromadb.utils.data_loaders import ImageLoader

    collection = client.create_collection(
        "reference-as-written",
        embedding_function=reference,
        data_loader=ImageLoader(),
        configuration={"hnsw": {"space": "cosine"}},
    )
    with stopwatch() as elapsed:
        for number, path in enumerate(paths):
            collection.add(ids=[f"ref-{number}"], uris=[str(path)])
    return elapsed() / len(paths)


def per_image_steps(paths: list[Path], reference: Any, side: int) -> tuple[dict[str, float], dict[str, float]]:
    """CPU milliseconds per image (this process, otherwise idle) of each step of an upload and of
    the reference pipeline, on the same photos."""
    from chromadb.utils.data_loaders import ImageLoader
    from django.conf import settings

    from ingestion.imaging import make_derivative, make_thumbnail, without_metadata
    from ingestion.validation import validate_image

    upload: dict[str, float] = defaultdict(float)
    ours: dict[str, float] = defaultdict(float)
    loader = ImageLoader()

    def timed(bucket: dict[str, float], name: str, call: Any) -> Any:
        start = time.process_time()
        value = call()
        bucket[name] += (time.process_time() - start) * 1000 / len(paths)
        return value

    for path in paths:
        data = path.read_bytes()
        valid = timed(
            upload,
            "validate (every byte decoded, at the scale the model and thumbnail need; upright RGB, sha256)",
            lambda d=data: validate_image(
                io.BytesIO(d), byte_size=len(d), keep_side=side, keep_edge=settings.THUMBNAIL_SIZE
            ),
        )
        timed(upload, "thumbnail", lambda v=valid: make_thumbnail(v.upright_rgb))
        timed(
            upload,
            "derivative (resize to the model's side, PNG)",
            lambda v=valid: make_derivative(v.upright_rgb, side=side),
        )
        timed(
            upload,
            "metadata stripped from the stored copy",
            lambda v=valid: without_metadata(v.data, v.image_format, orientation=v.orientation),
        )
        pixels = timed(ours, "ImageLoader decode", lambda p=path: loader([str(p)]))
        timed(ours, "OpenCLIPEmbeddingFunction (preprocess + fp32 forward, batch 1)", lambda x=pixels: reference(x))
    return dict(upload), dict(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="48,200", help="comma-separated numbers of photos per run")
    parser.add_argument("--clients", default="1,4", help="comma-separated numbers of concurrent API clients")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case, interleaved; medians printed")
    parser.add_argument(
        "--backlog", type=int, default=0, help="photos for the worker's backlog rate (default 2 forward batches)"
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (4 threads each)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our service")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for one run's images")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 6 photos, 1 and 2 clients, one run")
    args = parser.parse_args()
    if args.quick:
        args.photos, args.clients, args.repeats, args.backlog = "6", "1,2", 1, 4
    photo_counts = [int(n) for n in args.photos.split(",") if n]
    client_counts = [int(n) for n in args.clients.split(",") if n]

    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch_api_ingest")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    load_before = os.getloadavg()
    with local_stack(
        database=database, redis_url=redis_url, web_workers=args.web_workers, model=args.model
    ) as base_url:
        import chromadb
        import httpx
        from chromadb.config import Settings as ChromaSettings
        from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
        from django.conf import settings
        from PIL import Image

        from vectors.embedding import get_embedder

        embedder = get_embedder()
        backlog = args.backlog or 2 * embedder.batch_size
        paths = make_photos(max([*photo_counts, backlog]))
        photos = [(path.name, path.read_bytes()) for path in paths]
        megapixels = []
        for path in paths[: max(photo_counts)]:
            with Image.open(path) as image:
                megapixels.append(image.width * image.height / 1e6)
        print(f"machine: {machine()}; load average before the stack started {load_before[0]:.1f}")
        print(
            f"stack: gunicorn {args.web_workers}x4 threads, 1 Celery worker (--pool=solo), Chroma server, PostgreSQL, "
            f"Redis, this process's API clients, all on this machine's cores; ours {embedder.dtype} "
            f"(CLIP_PRECISION={settings.CLIP_PRECISION}), forward batches of {embedder.batch_size}; the reference fp32"
        )
        print(
            f"photos: JPEGs of {min(megapixels):.1f} to {max(megapixels):.1f} MP (median {median(megapixels):.1f} MP), "
            f"{sum(len(data) for _, data in photos[: max(photo_counts)]) / 1e6 / max(photo_counts):.1f} MB on average"
        )

        reference = client = None
        written = 0.0
        if not args.skip_baseline:
            reference = OpenCLIPEmbeddingFunction(
                model_name=settings.CLIP_MODEL, checkpoint=str(settings.CLIP_PRETRAINED)
            )
            address = urlsplit(settings.CHROMA_URL)
            client = chromadb.HttpClient(
                host=address.hostname or "127.0.0.1",
                port=address.port or 8000,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            reference_run(client, reference, paths[:2], "reference-warm-up")
            written = as_written(client, reference, paths[:2])

        # Every web process loads its code (and the model's input side) and the worker embeds once
        # before the clock starts.
        tenant, key = new_tenant("warm-up")
        warm = [(f"warm-{n}.jpg", _small_jpeg(n)) for n in range(4 * args.web_workers)]
        upload_all(base_url, key, warm, len(warm), [], [])
        wait_ready(tenant, len(warm), timeout=args.timeout)

        reference_rates: dict[int, list[float]] = defaultdict(list)
        reference_cpu: list[float] = []
        reference_each: dict[int, list[float]] = defaultdict(list)
        runs: dict[tuple[int, int], list[Run]] = defaultdict(list)
        backlogs: list[tuple[float, float]] = []
        model_rates: list[tuple[float, float]] = []
        backlog_ratios: list[float] = []
        # Runs alternate (reference, ours with each number of clients, ...), so a machine that speeds
        # up or slows down during the benchmark weighs on every side alike.
        for repeat in range(args.repeats):
            for count in photo_counts:
                if reference is not None:
                    rate, cpu, each = reference_run(client, reference, paths[:count], f"reference-{count}-{repeat}")
                    reference_rates[count].append(rate)
                    reference_cpu.append(cpu)
                    reference_each[count] += each
                    print(f"  reference, {count} photos, run {repeat + 1}: {rate:.2f} images/s")
                for clients in client_counts:
                    run = ours_through_api(
                        base_url, photos[:count], clients, f"run-{count}-{clients}-{repeat}", args.timeout
                    )
                    runs[count, clients].append(run)
                    print(
                        f"  ours, {count} photos, {clients} client{'s' * (clients > 1)}, run {repeat + 1}: "
                        f"{run.rate:.2f} images/s (uploads answered after {run.uploads_seconds:.1f} s, last "
                        f"searchable after {run.seconds:.1f} s; {len(run.batches)} claims, the worker "
                        f"{run.worker_rate:.1f} images/s while it held one)"
                    )
            # The model alone just before and just after the backlog: the machine's pace drifts
            # (other tenants of its host, its clock), and the worker is compared with the model at
            # the same moment, by the mean of the two.
            model_rates.append(model_only(embedder))
            backlogs.append(worker_backlog(base_url, photos[:backlog], f"backlog-{repeat}", args.timeout))
            model_rates.append(model_only(embedder))
            beside = (model_rates[-2][0] + model_rates[-1][0]) / 2
            backlog_ratios.append(backlogs[-1][0] / beside)
            print(
                f"  worker on a backlog of {backlog} photos, run {repeat + 1}: {backlogs[-1][0]:.2f} images/s; the "
                f"model alone {model_rates[-2][0]:.2f} before and {model_rates[-1][0]:.2f} after: "
                f"{backlog_ratios[-1]:.0%}"
            )

        steps = per_image_steps(paths[:12], reference, embedder.image_size) if reference is not None else None
        httpx.get(f"{settings.CHROMA_URL}/api/v2/heartbeat")  # the stack still answers

    model_rate = median([rate for rate, _ in model_rates])
    model_cpu = median([cpu for _, cpu in model_rates])
    print()
    print(f"machine: {machine()}; other processes may share these cores: compare only ratios measured in the same run")
    for count, rates in reference_rates.items():
        each = reference_each[count]
        print(
            f"reference Chroma's ImageLoader + OpenCLIPEmbeddingFunction (fp32), one image at a time, one add per image "
            f"to the Chroma server, {count} photos: {median(rates):.2f} images/s (median of {len(rates)})"
        )
        print(
            f"          per image {median(each) * 1000:.0f} ms (median), fastest tenth {percentile(each, 10) * 1000:.0f} ms, "
            f"slowest tenth {percentile(each, 90) * 1000:.0f} ms: its fp32 forward pass of one image keeps every core's "
            f"thread in lockstep, so other processes on the cores slow it far more than our uploads; at its fastest "
            f"tenth's pace throughout (small photos in quiet moments: a bound that flatters it) it would make "
            f"{1 / percentile(each, 10):.2f} images/s"
        )
    for (count, clients), found in runs.items():
        rate = median([run.rate for run in found])
        ratio = (
            f" = {rate / median(reference_rates[count]):.1f}x the reference "
            f"({rate * percentile(reference_each[count], 10):.1f}x against its fastest tenth's pace)"
            if reference_rates
            else ""
        )
        latencies = [latency for run in found for latency in run.upload_latencies]
        sizes = [n for run in found for n, _ in run.batches]
        print(
            f"ours      REST API, one file per request, {count} photos, {clients} client{'s' * (clients > 1)}, first upload "
            f"to last searchable: {rate:.2f} images/s (median of {len(found)}){ratio}; uploads answered after "
            f"{median([run.uploads_seconds for run in found]):.1f} s, upload p50 {median(latencies) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 95) * 1000:.0f} ms; claims of {median(sizes):.0f} images (median, max "
            f"{max(sizes)}); the worker {median([run.worker_rate for run in found]):.1f} images/s while it held a claim"
        )
        cpu = {kind: median([run.cpu.get(kind, 0.0) for run in found]) / count * 1000 for kind in found[0].cpu}
        wall = median([run.seconds for run in found])
        busy = median([run.cpu["machine"] / (run.seconds * (os.cpu_count() or 1)) for run in found])
        ours_cpu = sum(cpu.get(kind, 0.0) for kind in ("web", "worker", "chroma", "bench"))
        print(
            f"          CPU per image: web {cpu.get('web', 0):.0f} ms, worker {cpu.get('worker', 0):.0f} ms, Chroma "
            f"{cpu.get('chroma', 0):.0f} ms, API clients {cpu.get('bench', 0):.0f} ms; everything else on the machine "
            f"(PostgreSQL, Redis, other users) {cpu['machine'] - ours_cpu:.0f} ms; the cores {busy:.0%} busy over "
            f"{wall:.0f} s"
        )
    backlog_rate = median([rate for rate, _ in backlogs])
    print(
        f"worker    on a backlog of {backlog} uploaded photos (its consumer paused during the uploads), embedding "
        f"from the derivatives: {backlog_rate:.2f} images/s (median of {len(backlogs)}); against the model alone "
        f"just before and after each (5 batches each time): {', '.join(f'{ratio:.0%}' for ratio in backlog_ratios)} (median "
        f"{median(backlog_ratios):.0%}); CPU per image {median([c for _, c in backlogs]) * 1000:.0f} ms"
    )
    print(
        f"model     image tower alone through the worker's call, {embedder.dtype}, batch {embedder.batch_size} (as "
        f"bench.ingest measures it, in this process, stack idle): {model_rate:.2f} images/s (median of "
        f"{len(model_rates)}); CPU per image {model_cpu * 1000:.0f} ms"
    )
    if reference_cpu:
        print(
            f"reference CPU per image in this process: {median(reference_cpu) * 1000:.0f} ms. As Chroma's documentation "
            f"writes it (add(uris=[one image]) on a collection made with the function and the loader), chromadb "
            f"{chromadb.__version__} takes {written:.2f} s per image here: every add rebuilds the embedding function "
            f"from the collection's schema, loading the model twice; the reference above leaves that out"
        )
    if steps is not None:
        upload, pipeline = steps
        print(
            "per image, CPU ms on one thread (12 of the photos): upload "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in upload.items())
            + f" = {sum(upload.values()):.0f}; reference "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in pipeline.items())
            + f" = {sum(pipeline.values()):.0f}"
        )
        cores = len(os.sched_getaffinity(0))
        bound = cores / (model_cpu + sum(upload.values()) / 1000)
        print(
            f"ceiling   of this design on {cores} cores: the upload's picture steps above and this model's forward "
            f"pass as run here (CPU per image {model_cpu * 1000:.0f} ms), and nothing else (no web framework, "
            f"database, index, client): {bound:.2f} images/s = "
            + ", ".join(
                f"{bound / median(rates):.1f}x the reference of {count}" for count, rates in reference_rates.items()
            )
        )


def _small_jpeg(seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (320, 240), (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
