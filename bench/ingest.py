"""Ingest throughput: Chroma's reference pipeline against the worker's own code path, same JPEGs,
same model and checkpoint, one run. `python -m bench.ingest [--count 200] [--repeats 3]`"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from typing import Any

from bench._common import (
    gemm_shapes,
    gemm_share,
    machine,
    make_photos,
    matmul_peak_gflops,
    median,
    setup_django,
    stopwatch,
)


@dataclasses.dataclass
class Tower:
    rate: float  # images/s through the worker's call
    bare: float  # images/s of the bare forward pass
    plain: float  # images/s of OpenCLIP's own tower, not rearranged, same dtype (0: not measured)
    gflop: float  # per image
    peak: float  # GFLOP/s
    peak_at: str
    gemm_share: float  # of the tower's CPU time, in matrix products

    def line(self, label: str) -> str:
        achieved, bare = self.rate * self.gflop, self.bare * self.gflop
        gemm = f"; matrix products {self.gemm_share:.0%} of its CPU time" if self.gemm_share else ""
        plain = (
            f"; OpenCLIP's own tower {self.plain:.2f} images/s (ours {self.bare / self.plain:.2f}x)"
            if self.plain
            else ""
        )
        return (
            f"model     {label}: {self.rate:.2f} images/s through the worker's call = {achieved:.0f} GFLOP/s "
            f"({self.gflop:.2f} GFLOP/image), share {achieved / self.peak:.0%}; bare forward pass "
            f"{self.bare:.2f} images/s = {bare:.0f} GFLOP/s, share {bare / self.peak:.0%} of the measured "
            f"matmul peak {self.peak:.0f} GFLOP/s (at {self.peak_at}){gemm}{plain}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="JPEGs (at least 200 for quoted figures)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pipeline; medians are printed")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our pipeline and the model")
    parser.add_argument(
        "--model-batches",
        default="",
        help="comma-separated batch sizes for the model-only measure (default: the worker's)",
    )
    parser.add_argument(
        "--model-precisions",
        default="",
        help="comma-separated precisions for the model-only measure (default: the worker's)",
    )
    args = parser.parse_args()

    workdir = setup_django(model=args.model)
    import chromadb
    import numpy as np
    import torch
    from chromadb.config import Settings as ChromaSettings
    from chromadb.utils.data_loaders import ImageLoader
    from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
    from django.conf import settings
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from ingestion.models import AssetStatus, ImageAsset
    from ingestion.services.pipeline import assets_embed
    from tenants.services import tenant_create
    from vectors import index
    from vectors.embedding import ClipEmbedder, get_embedder

    photos = make_photos(args.count)
    sizes = []
    for path in photos:
        with Image.open(path) as image:
            sizes.append(image.size)
    megapixels = [width * height / 1e6 for width, height in sizes]
    embedder = get_embedder()
    print(f"machine: {machine()}")
    print(
        f"model: {args.model}, random weights from checkpoint {settings.CLIP_PRETRAINED}, device {embedder.device}, {embedder.dtype}"
    )
    print(
        f"images: {len(photos)} JPEGs, {min(megapixels):.1f} to {max(megapixels):.1f} MP (median {median(megapixels):.1f} MP)"
    )
    ids = [f"img-{i}" for i in range(len(photos))]

    tenant = tenant_create(slug="bench", name="Bench")
    media = settings.MEDIA_ROOT / "bench"
    media.mkdir(parents=True, exist_ok=True)
    assets = []
    for i, (path, (width, height)) in enumerate(zip(photos, sizes, strict=True)):
        shutil.copyfile(path, media / path.name)
        assets.append(ImageAsset(
            tenant=tenant, original_filename=path.name, file=f"bench/{path.name}", sha256=f"{i:064d}",
            image_format="JPEG", byte_size=path.stat().st_size, width=width, height=height,
        ))  # fmt: skip
    ImageAsset.objects.bulk_create(assets)
    asset_ids = [str(a.id) for a in assets]

    reference = None
    if not args.skip_baseline:
        reference = OpenCLIPEmbeddingFunction(
            model_name=args.model, checkpoint=str(settings.CLIP_PRETRAINED), device=embedder.device
        )
        client = chromadb.PersistentClient(
            path=str(workdir / "baseline"), settings=ChromaSettings(anonymized_telemetry=False)
        )
    baseline_rates: list[float] = []
    baseline_vectors: dict[str, list[float]] = {}
    our_rates: list[float] = []
    # Runs alternate (baseline, ours, baseline, ours...), so a machine that speeds up or slows down
    # during the benchmark weighs on both sides alike.
    for run in range(args.repeats):
        if reference is not None:
            collection = client.create_collection(
                f"baseline-{run}",
                embedding_function=reference,
                data_loader=ImageLoader(),
                configuration={"hnsw": {"space": "cosine"}},
            )  # type: ignore[arg-type]
            with stopwatch() as elapsed:
                for start in range(0, len(photos), 32):
                    collection.add(ids=ids[start : start + 32], uris=[str(p) for p in photos[start : start + 32]])
            baseline_rates.append(len(photos) / elapsed())
            print(f"  baseline run {run + 1}: {baseline_rates[-1]:.2f} images/s")
            got = collection.get(ids=ids, include=["embeddings"])
            baseline_vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
        ImageAsset.objects.update(status=AssetStatus.PENDING, attempts=0)
        index.delete_tenant_vectors(tenant=tenant)
        with stopwatch() as elapsed:
            for start in range(0, len(asset_ids), settings.EMBED_BATCH_SIZE):
                assets_embed(asset_ids=asset_ids[start : start + settings.EMBED_BATCH_SIZE])
        assert ImageAsset.objects.filter(status=AssetStatus.READY).count() == len(photos)
        our_rates.append(len(photos) / elapsed())
        print(f"  ours run {run + 1}: {our_rates[-1]:.2f} images/s")
    ours = index.fetch_vectors(tenant=tenant, ids=asset_ids)

    square_peaks: dict[tuple[str, str], tuple[float, str]] = {}

    plain_towers: dict[tuple[str, object], Any] = {}

    def plain_tower(model: ClipEmbedder) -> Any:
        """OpenCLIP's own image tower for the same weights and dtype. Only the CPU rearranges the
        tower, so on a GPU that is the loaded one."""
        import open_clip

        if model.device != "cpu":
            return model._model.visual
        if (model.device, model.dtype) not in plain_towers:
            plain = open_clip.create_model(args.model, pretrained=str(settings.CLIP_PRETRAINED))
            plain_towers[model.device, model.dtype] = plain.visual.eval().to(model.device, model.dtype)
        return plain_towers[model.device, model.dtype]

    def forward_only(model: ClipEmbedder, size: int) -> tuple[float, float]:
        """Images/s of the image tower's forward pass alone, on a batch already on the device in the
        model's dtype (no stacking, host-to-device copy or conversion of the vectors to lists), for
        the loaded tower and, where they differ, OpenCLIP's own (runs interleaved; 0 where they are
        the same)."""
        towers = {"ours": model._model.visual}
        if (plain := plain_tower(model)) is not towers["ours"]:
            towers["plain"] = plain
        batch = torch.randn(size, 3, model.image_size, model.image_size, device=model.device, dtype=model.dtype)
        on_gpu = model.device.startswith("cuda")
        rates: dict[str, list[float]] = {name: [] for name in towers}
        with torch.inference_mode():
            for run in range(1 + max(3, args.repeats)):
                for name, tower in towers.items():
                    with stopwatch() as elapsed:
                        tower(batch)
                        if on_gpu:
                            torch.cuda.synchronize()
                    if run:
                        rates[name].append(size / elapsed())
        return median(rates["ours"]), median(rates["plain"]) if "plain" in rates else 0.0

    def model_only(model: ClipEmbedder, size: int) -> Tower:
        """The image tower alone (batches already preprocessed), through the worker's call and as a
        bare forward pass, against the measured matmul peak of the same device and dtype: the best
        of square products and of the tower's own products at this batch size. Its arithmetic is
        counted on OpenCLIP's own tower (the same products; the counter does not see oneDNN's)."""
        model.batch_size, worker_batch = size, model.batch_size
        batch = torch.randn(size, 3, model.image_size, model.image_size)
        model.embed_preprocessed(list(batch))
        rates = []
        for _ in range(max(3, args.repeats)):
            with stopwatch() as elapsed:
                model.embed_preprocessed(list(batch))
            rates.append(size / elapsed())
        model.batch_size = worker_batch
        on_device = batch.to(model.device, model.dtype)
        plain = plain_tower(model)
        # The fused attention fast path hides its projections from the counter: count on the plain path.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.inference_mode():
            with FlopCounterMode(display=False) as counter:
                plain(on_device[:1])
            shapes = gemm_shapes(lambda: plain(on_device))
            torch.backends.mha.set_fastpath_enabled(True)
            on_cpu = model.device == "cpu"  # on a GPU the profiler's CPU times are launch times
            share = gemm_share(lambda: model._model.visual(on_device)) if on_cpu else 0.0
        dtype_name = str(model.dtype).removeprefix("torch.")
        if (dtype_name, model.device) not in square_peaks:
            square_peaks[dtype_name, model.device] = matmul_peak_gflops(dtype_name, device=model.device)
        own = matmul_peak_gflops(dtype_name, device=model.device, shapes=shapes, squares=False)
        peak, peak_at = max(square_peaks[dtype_name, model.device], own)
        bare, plain_rate = forward_only(model, size)
        return Tower(
            rate=median(rates),
            bare=bare,
            plain=plain_rate,
            gflop=counter.get_total_flops() / 1e9,
            peak=peak,
            peak_at=peak_at,
            gemm_share=share,
        )

    worker_tower = model_only(embedder, embedder.batch_size)
    extra = []
    dtypes = {"auto": embedder.dtype, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    for precision in [p for p in args.model_precisions.split(",") if p] or [embedder.spec.precision]:
        if dtypes.get(precision) == embedder.dtype:  # the worker's own model: not loaded twice
            other = embedder
        else:
            other = ClipEmbedder(dataclasses.replace(embedder.spec, precision=precision))
        for size in [int(b) for b in args.model_batches.split(",") if b] or [embedder.batch_size]:
            if other is embedder and size == embedder.batch_size:
                continue
            dtype_name = str(other.dtype).removeprefix("torch.")
            extra.append((f"{precision} ({dtype_name}), batch {size}", model_only(other, size)))

    print()
    if baseline_rates:
        print(
            f"baseline  Chroma OpenCLIPEmbeddingFunction + ImageLoader, add(uris) in batches of 32: {median(baseline_rates):.2f} images/s (median of {len(baseline_rates)})"
        )
    print(
        f"ours      worker path (claim, decode ahead in threads, batched forward, upsert, mark ready): {median(our_rates):.2f} images/s (median of {len(our_rates)})"
    )
    if baseline_rates:
        print(f"ratio     {median(our_rates) / median(baseline_rates):.1f}x")
        cosines = [float(np.dot(ours[a], baseline_vectors[b])) for a, b in zip(asset_ids, ids, strict=True)]
        print(f"agreement cosine(ours, baseline) per image: median {median(cosines):.5f}, min {min(cosines):.5f}")
    print(worker_tower.line(f"image tower alone, {embedder.dtype}, batch {embedder.batch_size}"))
    for label, tower in extra:
        print(tower.line(label))
    print(f"end to end {median(our_rates) / worker_tower.rate:.0%} of the model-only rate")


if __name__ == "__main__":
    main()
