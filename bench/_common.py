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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
PHOTO_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
MEGAPIXELS = (2, 3, 4, 6, 8, 12)


def model_checkpoint(model: str = "ViT-B-32", seed: int = 0) -> Path:
    path = CACHE / f"{model}-random-seed{seed}.pt"
    if not path.exists():
        import open_clip
        import torch

        torch.manual_seed(seed)
        weights = open_clip.create_model(model, pretrained=None).state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": weights}, path.with_suffix(".partial"))
        path.with_suffix(".partial").rename(path)
    return path


def setup_django(*, model: str = "ViT-B-32", workdir: Path | None = None, **env: str) -> Path:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="imagesearch-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATA_DIR", str(workdir))
    os.environ.setdefault("CLIP_MODEL", model)
    os.environ.setdefault("CLIP_PRETRAINED", str(model_checkpoint(model)))
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
    photographs (flipped, cropped and recoloured so no two are alike), made once and cached."""
    import numpy as np
    import skimage.data
    from PIL import Image, ImageEnhance

    folder = folder or CACHE / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    sources = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in PHOTO_SOURCES]
    paths = []
    for i in range(count):
        path = folder / f"photo-{i:05d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        image = sources[i % len(sources)]
        w, h = image.size
        crop = rng.uniform(0.7, 1.0)
        left, top = rng.uniform(0, 1 - crop) * w, rng.uniform(0, 1 - crop) * h
        image = image.crop((int(left), int(top), int(left + crop * w), int(top + crop * h)))
        if i % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
        pixels = MEGAPIXELS[i % len(MEGAPIXELS)] * 1_000_000
        scale = (pixels / (image.width * image.height)) ** 0.5
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        image.save(path, format="JPEG", quality=90)
    return paths


def matmul_peak_gflops(dtype_name: str = "float32", device: str = "cpu", repeats: int = 10) -> float:
    """The machine's measured matrix-multiply rate (the best of several square sizes, with the
    threads torch uses): the ceiling the image tower is compared with."""
    import torch

    dtype = getattr(torch, dtype_name)
    best = 0.0
    for size in (1024, 2048, 4096) if device == "cpu" else (4096, 8192):
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        for _ in range(2):
            a @ b
        for _ in range(repeats if size < 4096 or device != "cpu" else 3):
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


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
