"""Query latency and recall at scale: at least 100,000 vectors across at least 100 tenants of very
different sizes. Prints p50/p95 of the search service (text embedding + Chroma + loading rows) per
tenant size class, and recall@10 against exact search within the tenant.
`python -m bench.query [--scale 1.0]` (CHROMA_URL=... to measure against a Chroma server)"""

from __future__ import annotations

import argparse
import uuid

from bench._common import machine, median, percentile, setup_django, stopwatch

# (size class, images per tenant, tenants): 105,800 vectors over 108 tenants at scale 1.
TENANT_SIZES = [
    ("tens", 30, 60),
    ("hundreds", 300, 30),
    ("thousands", 1_000, 10),
    ("5 thousands", 5_000, 5),
    ("tens of thousands", 20_000, 3),
]
QUERIES = [
    "a photo of a dog",
    "a cat sleeping on a sofa",
    "mountains at sunset",
    "a red car",
    "people at a party",
    "a bowl of soup",
    "a city street at night",
    "a child playing football",
    "a cup of coffee",
    "a rocket launch",
    "flowers in a garden",
    "an office meeting",
    "a beach with palm trees",
    "a plate of pasta",
    "snow on trees",
    "a bicycle",
    "a person smiling",
    "a laptop on a desk",
    "a bridge over a river",
    "an old building",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies every tenant size (1.0 for quoted figures)"
    )
    parser.add_argument("--queries", type=int, default=40, help="timed queries per size class")
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()

    setup_django(model=args.model)
    import numpy as np

    from ingestion.models import AssetStatus, ImageAsset
    from search.services import search_by_text
    from tenants.models import Tenant
    from vectors import index
    from vectors.embedding import get_embedder

    embedder = get_embedder("text")
    dims = embedder.dimensions
    rng = np.random.default_rng(11)
    tenants: list[tuple[str, Tenant, np.ndarray, list[str]]] = []
    total = 0
    with stopwatch() as loading:
        for label, size, count in TENANT_SIZES:
            size = max(10, int(size * args.scale))
            for n in range(count):
                tenant = Tenant.objects.create(slug=f"{label.replace(' ', '-')}-{n}", name=f"{label} {n}")
                # Photos of one tenant cluster around a few themes, as real collections do.
                centres = rng.normal(size=(max(3, size // 200), dims))
                vectors = centres[rng.integers(0, len(centres), size)] + rng.normal(scale=0.6, size=(size, dims))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                ids = [str(uuid.uuid4()) for _ in range(size)]
                ImageAsset.objects.bulk_create(
                    [
                        ImageAsset(id=i, tenant=tenant, original_filename=f"{i}.jpg", file=f"x/{i}.jpg", sha256=i.replace("-", "")[:64],
                                   image_format="JPEG", byte_size=1, width=1, height=1, status=AssetStatus.READY)
                        for i in ids
                    ],
                    batch_size=5000,
                )  # fmt: skip
                for start in range(0, size, 5000):
                    index.upsert_vectors(
                        tenant=tenant, ids=ids[start : start + 5000], embeddings=vectors[start : start + 5000].tolist(),
                        metadatas=[{"category": "", "source": "", "uploaded_at": 0}] * len(ids[start : start + 5000]),
                    )  # fmt: skip
                tenants.append((label, tenant, vectors, ids))
                total += size
    from django.conf import settings

    chroma = f"server {settings.CHROMA_URL}" if settings.CHROMA_URL else "embedded"
    print(f"machine: {machine()}")
    print(f"index: {total:,} vectors of {dims} dimensions over {len(tenants)} tenants, loaded in {loading():.0f} s; "
          f"Chroma {chroma}")  # fmt: skip

    texts = embedder.embed_texts(QUERIES)
    # The first query of a tenant in a process opens its collection and loads its index from disk;
    # that cost is reported on its own, then every tenant is measured warm.
    cold = {}
    for label, tenant, _, _ in tenants:
        with stopwatch() as elapsed:
            search_by_text(tenant=tenant, text=QUERIES[0], limit=10)
        cold.setdefault(label, []).append(elapsed() * 1000)
    for label, _, _ in TENANT_SIZES:
        group = [t for t in tenants if t[0] == label]
        latencies, recalls = [], []
        per_tenant: dict[int, list[float]] = {}
        # Timed queries first, recall afterwards: numpy's BLAS threads keep spinning after a large
        # product and would steal the cores from the next query's text encoding.
        for q in range(args.queries):
            _, tenant, _, _ = group[q % len(group)]
            with stopwatch() as elapsed:
                results = search_by_text(tenant=tenant, text=QUERIES[q % len(QUERIES)], limit=10)
            latencies.append(elapsed() * 1000)
            assert all(r.asset.tenant_id == tenant.id for r in results)
        for q in range(args.queries):
            _, tenant, vectors, ids = group[q % len(group)]
            for query in (
                np.asarray(texts[q % len(texts)]),
                vectors[q % len(vectors)] + rng.normal(scale=0.3, size=dims),
            ):
                exact = {ids[i] for i in np.argsort(-(vectors @ query))[:10]}
                found = {hit.id for hit in index.query_vectors(tenant=tenant, embedding=query.tolist(), limit=10)}
                recalls.append(len(exact & found) / 10)
                per_tenant.setdefault(tenant.id, []).append(recalls[-1])
        worst = min(float(np.mean(values)) for values in per_tenant.values())
        print(f"{label:>18} ({len(group[0][3]):>6,} images/tenant): p50 {median(latencies):6.1f} ms  p95 {percentile(latencies, 95):6.1f} ms  "
              f"recall@10 mean {np.mean(recalls):.3f}, worst tenant {worst:.3f}, worst query {min(recalls):.2f}  (first query of a tenant: p50 {median(cold[label]):.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
