"""Many tenants on one Chroma server: a long tail of tenant sizes (most under 50 images, a few of
`--largest`), synthetic unit vectors written through the service's own index door (vectors.index),
one server started with the project's config/chroma.yaml. Prints the server's resident memory (in
all and per tenant), its disk, text-query latency per size class for a tenant's first query after a
restart (cold) and warm, the p95 of a query right after a write, recall@10 against exact search for
every class (and, at the end, for every tenant), upload to searchable through the REST API
(gunicorn, a Celery worker, PostgreSQL and Redis beside the same server, as `bench.latency`
measures it), and the ingest rate into the largest tenant against a collection with Chroma's
default persistence (the layout before the bounded pool), measured in the same run.

`python -m bench.tenants --tenants 10000` is the full run (about 1,000,000 vectors);
`--tenants 30 --largest 300` is the suite's small version. The uploads through the API (`--api-runs`,
0 to skip them) need PostgreSQL and Redis: BENCH_DATABASE_URL and BENCH_REDIS_URL, as bench.latency."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench._common import local_stack, machine, median, percentile, setup_django
from bench.latency import upload_to_searchable
from tests.support.processes import ChromaServer

if TYPE_CHECKING:
    from vectors.index import Hit

DIMENSIONS = 512
CLASSES = ((50, "<=50"), (1_000, "51-1,000"), (5_000, "1,001-5,000"), (10**9, ">5,000"))


@dataclass(frozen=True)
class BenchTenant:
    vector_key: str
    size: int
    seed: int

    def vectors(self) -> np.ndarray:
        """The tenant's vectors, made again from its seed whenever needed (never all kept in memory).
        A tenant's photos cluster around a few themes, as real collections do and as `bench.query`
        makes them: one theme per 200 images (at least 3), each image its theme plus noise. (One
        centre with wide noise, as this benchmark first made them, is nearly uniform on the sphere:
        every image about as far from a query as the next, a case no photo library has, where even
        an exact-as-possible HNSW walk finds 85% of the ten nearest on 20,000 vectors.)"""
        rng = np.random.default_rng(self.seed)
        centres = rng.normal(size=(max(3, self.size // 200), DIMENSIONS))
        noise = rng.normal(scale=0.6, size=(self.size, DIMENSIONS))
        vectors = (centres[rng.integers(0, len(centres), self.size)] + noise).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def probe(self, rng: np.random.Generator) -> tuple[np.ndarray, set[str]]:
        """A query near one of the tenant's images (its vector plus noise) and the ids of the exact
        ten nearest to it."""
        vectors = self.vectors()
        query = vectors[rng.integers(0, self.size)] + 0.3 * rng.normal(size=DIMENSIONS).astype(np.float32)
        query /= np.linalg.norm(query)
        return query, {f"{self.vector_key}-{i}" for i in np.argsort(-(vectors @ query))[:10]}

    def recall(self, exact: set[str], hits: list[Hit]) -> float:
        return len(exact & {hit.id for hit in hits}) / min(10, self.size)


def tenant_sizes(count: int, largest: int, seed: int) -> list[int]:
    """A long tail: one tenant in 400 of `largest`, one in 200 of a quarter of it, one in a hundred
    of a tenth of it, the rest Pareto-distributed from 5 (most under 50), capped at 1,000. At 10,000
    tenants and a largest of 20,000: about 1,150,000 vectors, 90% of the tenants at most 50."""
    rng = np.random.default_rng(seed)
    sizes = [int(min(1_000, 5 * (1 + rng.pareto(1.1)))) for _ in range(count)]
    tiers = ((count // 100, largest // 10), (count // 200, largest // 4), (count // 400, largest))
    position = 0
    for number, size in tiers:
        for i in range(position, min(count, position + max(1, number))):
            sizes[i] = max(sizes[i], size)
        position += max(1, number)
    return sizes


def size_class(size: int) -> str:
    return next(name for limit, name in CLASSES if size <= limit)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def disk_mb(path: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--largest", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=40, help="tenants queried per size class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--api-runs", type=int, default=15, help="uploads through the API timed to searchable at the end (0: none)"
    )
    parser.add_argument("--model", default="ViT-B-32", help="the stack's model (random weights) for --api-runs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="imagesearch-tenants-"))
    output = Path(os.environ.get("TEST_OUTPUT_DIR", "test-output"))
    server = ChromaServer(workdir / "chroma", log=output / "bench-tenants-chroma.log")
    server.start()
    finished = False
    try:
        if args.api_runs:
            # The deployed shape beside the same server: gunicorn, a Celery worker, PostgreSQL, Redis.
            database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch_bench")
            redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
            with local_stack(
                database=database, redis_url=redis_url, model=args.model, chroma=server, workdir=workdir
            ) as base_url:
                run(args, server, base_url)
        else:
            setup_django(workdir=workdir, CHROMA_URL=server.url, CLIP_PRETRAINED="random", CLIP_MODEL=args.model)
            run(args, server, "")
        finished = True
    finally:
        server.stop()
        if finished:  # otherwise the stack's logs stay there to read
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, server: ChromaServer, base_url: str) -> None:
    import chromadb

    from vectors import index

    rng = np.random.default_rng(args.seed)
    sizes = tenant_sizes(args.tenants, args.largest, args.seed)
    tenants = [BenchTenant(f"bench-{i:05d}", size, args.seed * 100_003 + i) for i, size in enumerate(sizes)]
    print(f"machine: {machine()}")
    print(f"{len(tenants):,} tenants, {sum(sizes):,} vectors; sizes: median {int(median(sizes))}, "
          f"{sum(s <= 50 for s in sizes) / len(sizes):.0%} at most 50, largest {max(sizes):,}")  # fmt: skip

    started = time.perf_counter()
    largest_rate = 0.0
    for number, tenant in enumerate(tenants):
        vectors = tenant.vectors()
        ids = [f"{tenant.vector_key}-{i}" for i in range(tenant.size)]
        write_started = time.perf_counter()
        index.upsert_vectors(
            tenant=tenant, ids=ids, embeddings=vectors, metadatas=[{"category": "bench"}] * tenant.size
        )
        if tenant.size == args.largest and not largest_rate:
            largest_rate = tenant.size / (time.perf_counter() - write_started)
        if number % 500 == 499:
            print(f"  {number + 1:,} tenants written, {time.perf_counter() - started:.0f} s, "
                  f"server {rss_mb(server.process.pid):.0f} MB", flush=True)  # fmt: skip
    written = time.perf_counter() - started

    # The same largest tenant into a collection with Chroma's default persistence, in the same run.
    host, port = server.url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    baseline_config = {k: v for k, v in index.HNSW_CONFIGURATION.items() if k not in index.HNSW_SMALL}
    baseline = client.create_collection(
        "bench-baseline", configuration={"hnsw": baseline_config}, embedding_function=None
    )
    big = next(t for t in tenants if t.size == args.largest)
    vectors = big.vectors()
    baseline_started = time.perf_counter()
    for start in range(0, big.size, index.MAX_RECORDS_PER_WRITE):
        end = start + index.MAX_RECORDS_PER_WRITE
        baseline.add(ids=[str(i) for i in range(start, min(end, big.size))], embeddings=vectors[start:end])
    baseline_rate = big.size / (time.perf_counter() - baseline_started)
    client.delete_collection("bench-baseline")

    memory = rss_mb(server.process.pid)
    print(f"written in {written:.0f} s; server resident {memory:.0f} MB after writing "
          f"({memory / len(tenants) * 1024:.0f} KB per tenant, {memory / (sum(sizes) / 100_000):.0f} MB per 100,000 vectors); "
          f"disk {disk_mb(server.path):.0f} MB")  # fmt: skip
    print(f"ingest into a tenant of {big.size:,}: {largest_rate:.0f} vectors/s with the pool's persistence, "
          f"{baseline_rate:.0f} with Chroma's default, ratio {largest_rate / baseline_rate:.2f}")  # fmt: skip

    by_class: dict[str, list[BenchTenant]] = {}
    for tenant in tenants:
        by_class.setdefault(size_class(tenant.size), []).append(tenant)
    sample = {
        name: [members[i] for i in rng.permutation(len(members))[: args.sample]] for name, members in by_class.items()
    }

    server.stop()
    server.start()  # cold: every index must come back from disk
    index.reset_connection()
    print(f"server resident after a restart, before any query: {rss_mb(server.process.pid):.0f} MB")
    cold: dict[str, list[float]] = {}
    warm: dict[str, list[float]] = {}
    recall: dict[str, list[float]] = {}
    for name, members in sample.items():
        for tenant in members:
            query, exact = tenant.probe(rng)
            began = time.perf_counter()
            hits = index.query_vectors(tenant=tenant, embedding=query, limit=10)
            cold.setdefault(name, []).append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            index.query_vectors(tenant=tenant, embedding=query, limit=10)
            warm.setdefault(name, []).append((time.perf_counter() - began) * 1000)
            recall.setdefault(name, []).append(tenant.recall(exact, hits))
    print(f"server resident after the cold queries: {rss_mb(server.process.pid):.0f} MB")
    for name in (name for _, name in CLASSES if name in sample):
        print(f"  {name:>12}: {len(by_class[name]):>6,} tenants; cold p50 {median(cold[name]):.1f} ms "
              f"p95 {percentile(cold[name], 95):.1f}; warm p50 {median(warm[name]):.1f} p95 {percentile(warm[name], 95):.1f}; "
              f"recall@10 mean {np.mean(recall[name]):.3f} worst {min(recall[name]):.3f}")  # fmt: skip

    every_started = time.perf_counter()
    worst: dict[str, float] = {}
    below = 0
    for tenant in tenants:
        query, exact = tenant.probe(rng)
        found = tenant.recall(exact, index.query_vectors(tenant=tenant, embedding=query, limit=10))
        name = size_class(tenant.size)
        worst[name] = min(worst.get(name, 1.0), found)
        below += found < 0.98
    print(f"recall@10 for every tenant (one query each, {time.perf_counter() - every_started:.0f} s): "
          f"{below} of {len(tenants):,} below 0.98; worst by class: "
          + ", ".join(f"{name} {worst[name]:.3f}" for _, name in CLASSES if name in worst))  # fmt: skip

    after_write = []
    for tenant in [t for members in sample.values() for t in members][: args.sample]:
        vector = tenant.vectors()[:1]
        index.upsert_vectors(
            tenant=tenant, ids=[f"{tenant.vector_key}-new"], embeddings=vector, metadatas=[{"category": "new"}]
        )
        began = time.perf_counter()
        hits = index.query_vectors(tenant=tenant, embedding=vector[0], limit=10)
        after_write.append((time.perf_counter() - began) * 1000)
        assert f"{tenant.vector_key}-new" in {h.id for h in hits}, "a vector just written was not found"
    print(f"query right after a write: p50 {median(after_write):.1f} ms, p95 {percentile(after_write, 95):.1f} ms "
          f"({len(after_write)} tenants, every new vector found)")  # fmt: skip

    if base_url:
        timings = upload_to_searchable(base_url, runs=args.api_runs, slug="bench-api")
        print(f"upload to searchable through the API beside the {len(tenants):,} tenants (a 2-4 MP JPEG, idle "
              f"worker): p50 {median(timings) * 1000:.0f} ms, p95 {percentile(timings, 95) * 1000:.0f} ms "
              f"over {len(timings)} uploads")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
