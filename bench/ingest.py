"""Ingest throughput: Chroma's reference pipeline against the worker's own code path, same JPEGs,
same model and checkpoint, one run. The worker's path twice: from the originals (rows stored
without a derivative, so the worker decodes each JPEG and makes one) and from the derivatives an
upload through `assets_upload` stores (decoded once, at upload). `python -m bench.ingest [--count 200] [--repeats 3]`"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def worker_call_rate(model: Any, size: int, repeats: int) -> float:
    """Images/s of the image tower through the worker's own call (`embed_preprocessed`) on batches
    already preprocessed, at batch `size`: the model-only rate the worker's rate is compared with.
    Median of `repeats` calls after one warm-up call."""
    import torch

    model.batch_size, worker_batch = size, model.batch_size
    batch = list(torch.randn(size, 3, model.image_size, model.image_size))
    model.embed_preprocessed(batch)
    rates = []
    for _ in range(repeats):
        with stopwatch() as elapsed:
            model.embed_preprocessed(batch)
        rates.append(size / elapsed())
    model.batch_size = worker_batch
    return median(rates)


@contextmanager
def forward_passes(model: Any) -> Iterator[Callable[[], float]]:
    """Seconds the image tower's forward passes took while inside, on the device's own clock: CUDA
    events on a GPU (the card busy; the rest of the time it waits for the host), the wall clock on
    a CPU."""
    import torch

    tower_call = model._model.encode_image
    on_gpu = model.device.startswith("cuda")
    spans: list[Any] = []

    def timed(batch: Any) -> Any:
        if not on_gpu:
            with stopwatch() as elapsed:
                features = tower_call(batch)
            spans.append(elapsed())
            return features
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        features = tower_call(batch)
        end.record()
        spans.append((start, end))
        return features

    def total() -> float:
        if on_gpu:
            torch.cuda.synchronize()
            return sum(start.elapsed_time(end) for start, end in spans) / 1000
        return float(sum(spans))

    model._model.encode_image = timed
    try:
        yield total
    finally:
        del model._model.encode_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="JPEGs (at least 200 for quoted figures)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pipeline; medians are printed")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our pipeline and the model")
    parser.add_argument(
        "--derivative-copies",
        type=int,
        default=1,
        help="embed each uploaded photo's derivative this many times, as that many images: enough work for a GPU",
    )
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
    from django.core.files import File
    from django.core.files.storage import default_storage
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from ingestion.models import AssetStatus, ImageAsset
    from ingestion.services.pipeline import assets_embed
    from ingestion.services.upload import assets_upload
    from tenants.models import Tenant
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

    # The same photos uploaded as every door uploads them: validated, thumbnailed and their
    # derivative stored at upload (decoded once). Nothing embeds them until the runs below.
    uploaded = tenant_create(slug="bench-uploaded", name="Bench uploaded", quota_bytes=1 << 40)
    upload_seconds = 0.0
    derivative_ids: list[str] = []
    for path in photos:
        with path.open("rb") as handle, stopwatch() as elapsed:
            (outcome,) = assets_upload(tenant=uploaded, uploaded_by=None, files=[File(handle, name=path.name)])
        upload_seconds += elapsed()
        assert outcome.asset is not None and outcome.asset.derivative_side == embedder.image_size, outcome
        derivative_ids.append(str(outcome.asset.id))
    originals = list(ImageAsset.objects.filter(tenant=uploaded))
    for copy in range(1, args.derivative_copies):
        clones = []
        for asset in originals:
            clone = ImageAsset(**{f.attname: getattr(asset, f.attname) for f in ImageAsset._meta.concrete_fields})
            clone.id, clone.sha256 = uuid.uuid4(), f"{copy:08d}{asset.sha256[8:]}"
            shutil.copyfile(
                default_storage.path(asset.derivative_name(embedder.image_size)),
                default_storage.path(clone.derivative_name(embedder.image_size)),
            )
            clones.append(clone)
        ImageAsset.objects.bulk_create(clones)
        derivative_ids += [str(clone.id) for clone in clones]

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
    rebuild_shares: list[float] = []  # of each baseline run's time, Chroma rebuilding its function
    our_rates: list[float] = []
    derivative_rates: list[float] = []
    our_forward: list[float] = []  # share of each run's time in the forward passes
    derivative_forward: list[float] = []

    def embed_all(owner: Tenant, pending: list[str], shares: list[float]) -> float:
        """Images/s of the worker's path over `pending` (already reset to pending), in tasks of
        EMBED_BATCH_SIZE as uploads queue them; their old vectors deleted first. Appends to `shares`
        the share of the time the forward passes took."""
        index.delete_tenant_vectors(tenant=owner)
        with forward_passes(embedder) as forward, stopwatch() as elapsed:
            for start in range(0, len(pending), settings.EMBED_BATCH_SIZE):
                assets_embed(asset_ids=pending[start : start + settings.EMBED_BATCH_SIZE])
        assert ImageAsset.objects.filter(tenant=owner, status=AssetStatus.READY).count() == len(pending)
        shares.append(forward() / elapsed())
        return len(pending) / elapsed()

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
            # chromadb 1.5.9's add reads the collection's schema, which rebuilds the embedding function
            # from its configuration (the model loaded twice) on every call: timed once, counted per add.
            with stopwatch() as rebuilding:
                _ = collection.schema
            adds = -(-len(photos) // 32)
            rebuild_shares.append(rebuilding() * adds * baseline_rates[-1] / len(photos))
        # No derivative: the worker decodes each original (and stores the derivative it makes).
        ImageAsset.objects.filter(tenant=tenant).update(status=AssetStatus.PENDING, attempts=0, derivative_side=0)
        our_rates.append(embed_all(tenant, asset_ids, our_forward))
        print(f"  ours run {run + 1}, from the originals: {our_rates[-1]:.2f} images/s")
        ImageAsset.objects.filter(tenant=uploaded).update(status=AssetStatus.PENDING, attempts=0)
        derivative_rates.append(embed_all(uploaded, derivative_ids, derivative_forward))
        print(
            f"  ours run {run + 1}, from the upload's derivatives: {derivative_rates[-1]:.2f} images/s "
            f"({len(derivative_ids)} images)"
        )
    ours = index.fetch_vectors(tenant=tenant, ids=asset_ids)
    from_derivatives = index.fetch_vectors(tenant=uploaded, ids=derivative_ids[: len(photos)])

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
        rate = worker_call_rate(model, size, max(3, args.repeats))
        batch = torch.randn(size, 3, model.image_size, model.image_size)
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
            rate=rate,
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
            f"baseline  Chroma OpenCLIPEmbeddingFunction + ImageLoader, add(uris) in batches of 32: {median(baseline_rates):.2f} images/s (median of {len(baseline_rates)}); "
            f"of its time, about {median(rebuild_shares):.0%} is chromadb {chromadb.__version__} rebuilding the embedding function from the collection's schema on each add "
            f"(without it {median(baseline_rates) / (1 - median(rebuild_shares)):.2f} images/s)"
        )
    print(
        f"ours      worker path from the originals (claim, decode ahead in threads, batched forward, upsert, mark ready): {median(our_rates):.2f} images/s (median of {len(our_rates)})"
    )
    print(
        f"ours      worker path from the upload's derivatives (decoded once, at upload): {median(derivative_rates):.2f} images/s (median of {len(derivative_rates)}); "
        f"the upload step itself (validate with a full decode, thumbnail, derivative, store; one thread): {len(photos) / upload_seconds:.2f} images/s"
    )
    if baseline_rates:
        print(
            f"ratio     {median(our_rates) / median(baseline_rates):.1f}x from the originals, "
            f"{median(derivative_rates) / median(baseline_rates):.1f}x from the derivatives"
        )
        for label, vectors, own_ids in (
            ("originals", ours, asset_ids),
            ("derivatives", from_derivatives, derivative_ids[: len(photos)]),
        ):
            cosines = [float(np.dot(vectors[a], baseline_vectors[b])) for a, b in zip(own_ids, ids, strict=True)]
            print(
                f"agreement cosine(ours from the {label}, baseline) per image: median {median(cosines):.5f}, min {min(cosines):.5f}"
            )
    print(worker_tower.line(f"image tower alone, {embedder.dtype}, batch {embedder.batch_size}"))
    for label, tower in extra:
        print(tower.line(label))
    print(
        f"end to end {median(our_rates) / worker_tower.rate:.0%} of the model-only rate from the originals, "
        f"{median(derivative_rates) / worker_tower.rate:.0%} from the derivatives"
    )
    waiting = "the card waits for the host" if embedder.device.startswith("cuda") else "outside the forward passes"
    print(
        f"forward   share of the worker path's time in the image tower's forward passes ({embedder.device} clock): "
        f"{median(our_forward):.0%} from the originals, {median(derivative_forward):.0%} from the derivatives; "
        f"{waiting}: {1 - median(our_forward):.0%} and {1 - median(derivative_forward):.0%}"
    )


if __name__ == "__main__":
    main()
