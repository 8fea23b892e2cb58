"""Shared by the benchmarks: a throw-away Django environment (its own SQLite, media and embedded
Chroma under a temporary folder, or the services named in the environment), the benchmark model
(random-weight ViT-B-32 saved once as a checkpoint file) and JPEGs made from real photographs."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.checkpoints import model_checkpoint
from tests.support.processes import CeleryWorker, ChromaServer, GunicornServer

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
PHOTO_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
MEGAPIXELS = (2, 3, 4, 6, 8, 12)


def setup_django(*, model: str = "ViT-B-32", workdir: Path | None = None, **env: str) -> Path:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="imagesearch-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATA_DIR", str(workdir))
    os.environ.setdefault("CLIP_MODEL", model)
    if "CLIP_PRETRAINED" not in os.environ:  # built only when no weights were named
        os.environ["CLIP_PRETRAINED"] = str(model_checkpoint(model, 0, CACHE / f"{model}-random-seed0.pt"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return workdir


def make_photos(count: int, folder: Path | None = None) -> list[Path]:
    """`count` JPEGs of 2 to 12 megapixels, resized and re-encoded from scikit-image's bundled
    photographs (flipped, cropped and recoloured so no two are alike), made once and cached. The
    random choices are drawn in order here, the pixels are made on every core."""
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np
    import skimage.data

    sources = []
    for name in PHOTO_SOURCES:  # an older scikit-image may fetch some of them from the internet
        try:
            getattr(skimage.data, name)()
        except Exception:  # noqa: S112 - any failure means "not bundled here"
            continue
        sources.append(name)
    folder = folder or CACHE / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    jobs, paths = [], []
    for i in range(count):
        path = folder / f"photo-{i:05d}.jpg"
        paths.append(path)
        crop, left, top, colour = (float(x) for x in rng.uniform(size=4))
        if not path.exists():
            jobs.append((path, sources[i % len(sources)], i, 0.7 + 0.3 * crop, left, top, 0.6 + 0.8 * colour))
    if jobs:
        with ProcessPoolExecutor() as pool:
            list(pool.map(_make_photo, jobs, chunksize=4))
    return paths


def _make_photo(job: tuple[Path, str, int, float, float, float, float]) -> None:
    import skimage.data
    from PIL import Image, ImageEnhance

    path, source, i, crop, left, top, colour = job
    image = Image.fromarray(getattr(skimage.data, source)()).convert("RGB")
    w, h = image.size
    left, top = left * (1 - crop) * w, top * (1 - crop) * h
    image = image.crop((int(left), int(top), int(left + crop * w), int(top + crop * h)))
    if i % 2:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = ImageEnhance.Color(image).enhance(colour)
    pixels = MEGAPIXELS[i % len(MEGAPIXELS)] * 1_000_000
    scale = (pixels / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    image.save(path.with_suffix(".partial"), format="JPEG", quality=90)
    path.with_suffix(".partial").rename(path)


def matmul_peak_gflops(
    dtype_name: str = "float32",
    device: str = "cpu",
    shapes: Iterable[tuple[int, int, int]] = (),
    squares: bool = True,
    repeats: int = 10,
) -> tuple[float, str]:
    """The machine's measured matrix-multiply rate, the ceiling the image tower is compared with: the
    best of several square sizes and of the given (M, K, N) shapes (the tower's own products, which
    can beat every square: on a CPU their weights stay in cache), with the threads torch uses.
    Returns the rate and the shape that reached it."""
    import torch

    dtype = getattr(torch, dtype_name)
    sizes = ((1024, 2048, 4096) if device == "cpu" else (4096, 8192)) if squares else ()
    best, at = 0.0, ""
    for m, k, n in [*((size, size, size) for size in sizes), *sorted(set(shapes))]:
        a = torch.randn(m, k, dtype=dtype, device=device)
        b = torch.randn(k, n, dtype=dtype, device=device)
        for _ in range(2):
            a @ b
        for _ in range(3 if device == "cpu" and m * k * n >= 4096**3 else repeats):
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            rate = 2 * m * k * n / (time.perf_counter() - start) / 1e9
            if rate > best:
                best, at = rate, f"{m}x{k}x{n}"
    return best, at


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise")


def gemm_shapes(forward: Callable[[], object]) -> set[tuple[int, int, int]]:
    """The (M, K, N) shapes of the 2-D matrix products one call of `forward` makes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as run:
        forward()
    shapes = set()
    for event in run.events():
        if event.name in ("aten::mm", "aten::addmm"):
            first, second = event.input_shapes[-2:] if event.name == "aten::mm" else event.input_shapes[1:3]
            shapes.add((first[0], first[1], second[1]))
    return shapes


def gemm_share(forward: Callable[[], object]) -> float:
    """The share of one call's CPU time spent in matrix products (batched ones included; those
    inside a fused attention kernel count as the kernel, which is not a matrix product)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as run:
        forward()
    averages = run.key_averages()
    total = sum(event.self_cpu_time_total for event in averages)
    gemm = sum(event.self_cpu_time_total for event in averages if event.key in GEMM_OPS)
    return gemm / total if total else 0.0


@contextmanager
def local_stack(
    *,
    database: str,
    redis_url: str,
    web_workers: int = 1,
    model: str = "ViT-B-32",
    chroma: ChromaServer | None = None,
    workdir: Path | None = None,
) -> Iterator[str]:
    """The deployed shape on loopback: a fresh PostgreSQL database, a Redis db, a `chroma run`
    server (or `chroma`, already running, left running), one Celery worker and gunicorn, all
    started here and stopped on exit. Yields the web address; this process is set up as a Django
    client of the same database, Redis and Chroma."""
    import psycopg

    name = database.rsplit("/", 1)[1]
    with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    workdir = workdir or Path(tempfile.mkdtemp(prefix="imagesearch-bench-"))
    logs = workdir / "logs"
    owned = [] if chroma else [ChromaServer(workdir / "chroma", log=logs)]
    chroma = chroma or owned[0]
    setup_django(
        model=model,
        workdir=workdir,
        DATABASE_URL=database,
        REDIS_URL=redis_url,
        CHROMA_URL=chroma.url,
        TASKS_IN_PROCESS="0",
    )
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    web = GunicornServer(env=env, log=logs, workers=web_workers)
    servers = [*owned, CeleryWorker(env=env, log=logs, loglevel="WARNING"), web]
    try:
        for server in servers:
            server.start(wait=False)
        for server in servers:
            server.wait_ready(watching=servers)
        yield web.url
    except BaseException:
        print(f"logs of the stack: {logs}", file=sys.stderr)
        raise
    finally:
        for server in reversed(servers):
            server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}"
