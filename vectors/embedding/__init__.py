"""The one door to torch and open_clip: turns RGB images and texts into unit-length vectors.

The vectors are the ones Chroma's `OpenCLIPEmbeddingFunction` gives for the same model and
checkpoint (same preprocessing, same normalisation), computed in batches instead of one by one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random"
# Embeddings travel as float32 arrays, one row per image or text.
Vectors = npt.NDArray[np.float32]


class EmbeddingModelUnavailable(ImproperlyConfigured):
    """The configured weights cannot be loaded; the message says which setting to change."""


Tower = Literal["image", "text"]
BOTH_TOWERS: tuple[Tower, ...] = ("image", "text")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    pretrained: str
    device: str = "auto"
    seed: int = 0
    precision: str = "auto"
    batch_size: int = 0

    @classmethod
    def from_settings(cls) -> ModelSpec:
        return cls(
            name=settings.CLIP_MODEL,
            pretrained=settings.CLIP_PRETRAINED,
            device=settings.CLIP_DEVICE,
            seed=settings.CLIP_RANDOM_SEED,
            precision=settings.CLIP_PRECISION,
            batch_size=settings.CLIP_BATCH_SIZE,
        )

    @property
    def uses_random_weights(self) -> bool:
        return self.pretrained == RANDOM_WEIGHTS

    @property
    def checkpoint_path(self) -> Path | None:
        if self.uses_random_weights:
            return None
        looks_like_path = "/" in self.pretrained or self.pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
        return Path(self.pretrained).expanduser() if looks_like_path else None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@functools.cache
def model_key(spec: ModelSpec) -> str:
    """Names the vector space: the same key exactly when the same model and weights make the vectors.

    Computable without loading the model, so a web process can find the collection cheaply.
    """
    if spec.uses_random_weights:
        weights = f"random-seed{spec.seed}"
    elif (path := spec.checkpoint_path) is None:
        weights = spec.pretrained
    elif path.is_file():
        weights = f"ckpt-{_file_digest(path)[:16]}"
    else:
        raise EmbeddingModelUnavailable(
            f"CLIP_PRETRAINED={spec.pretrained!r} looks like a checkpoint path, but there is no file there. "
            "Point it at an OpenCLIP checkpoint file, or use a pretrained tag such as 'laion2b_s34b_b79k'."
        )
    return _slug(f"clip-{spec.name}-{weights}")[:200]


class ClipEmbedder:
    """An OpenCLIP model loaded once per process, embedding in batches.

    `towers` names the halves to keep: a web process that only embeds search texts drops the image
    tower. With CLIP_PRECISION=auto the weights are held in bf16 where the hardware multiplies bf16
    natively (CUDA, fp16 on older cards; CPUs with AMX or AVX512-BF16: 5x fp32 on a Xeon with AMX,
    cosine 0.9999 to the fp32 vectors) and in fp32 elsewhere. Casting the weights once beats
    autocast, which re-casts every weight on every call and was slower than fp32 on the CPU. On a
    CPU the image tower is then rearranged for oneDNN (`cpu_tower`): the same vectors within
    rounding, in fewer and faster calls."""

    def __init__(self, spec: ModelSpec, towers: tuple[Tower, ...] = BOTH_TOWERS) -> None:
        import open_clip
        import torch

        self.spec = spec
        self.towers = towers
        self._torch = torch
        self.device = self._resolve_device(spec.device)
        self.dtype = self._resolve_precision(spec.precision)
        self.batch_size = spec.batch_size or (256 if self.device.startswith("cuda") else 32)
        if spec.name not in open_clip.list_models():
            raise EmbeddingModelUnavailable(f"CLIP_MODEL={spec.name!r} is not an OpenCLIP model name; try 'ViT-B-32'.")
        self.model_key = model_key(spec)
        unreachable = _hub_unreachable(spec)
        if unreachable:
            raise EmbeddingModelUnavailable(
                f"Could not load the weights CLIP_PRETRAINED={spec.pretrained!r} for CLIP_MODEL={spec.name!r}: they "
                f"are not downloaded yet and {unreachable}. Allow the download from Hugging Face on first run, or "
                f"set CLIP_PRETRAINED to the path of a local checkpoint file, or set CLIP_PRETRAINED={RANDOM_WEIGHTS} "
                "for untrained weights whose results mean nothing."
            )
        try:
            with _quiet_download_logs():
                if spec.uses_random_weights:
                    torch.manual_seed(spec.seed)
                    model, _, preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=None)
                else:
                    model, _, preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=spec.pretrained)
        except Exception as exc:  # open_clip raises RuntimeError, OSError, HTTP errors...
            reason = " ".join(str(exc).split())
            raise EmbeddingModelUnavailable(
                f"Could not load the weights CLIP_PRETRAINED={spec.pretrained!r} for CLIP_MODEL={spec.name!r} "
                f"({reason[:300]}{'…' if len(reason) > 300 else ''}). Allow the download from Hugging Face on first "
                f"run, or set CLIP_PRETRAINED to the path of a local checkpoint file, or set "
                f"CLIP_PRETRAINED={RANDOM_WEIGHTS} for untrained weights whose results mean nothing."
            ) from exc
        if "image" not in towers:
            model.visual = torch.nn.Identity()  # frees the image tower's weights
        self._model: Any = model.eval().to(self.device, dtype=self.dtype)
        if "image" in towers and self.device == "cpu":
            from vectors.embedding.cpu_tower import rearrange_for_cpu

            rearrange_for_cpu(
                self._model.visual,
                batch_size=self.batch_size,
                pack_weights=self.dtype == torch.bfloat16 and cpu_has_native_bf16(),
            )
        self._preprocess: Any = preprocess
        self._tokenizer: Any = open_clip.get_tokenizer(spec.name)
        self._lock = threading.Lock()
        self.dimensions = int(getattr(model, "embed_dim", 0) or model.text_projection.shape[1])
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)

    def _resolve_precision(self, precision: str) -> Any:
        torch = self._torch
        if precision == "auto":
            if self.device.startswith("cuda"):
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        choices = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if precision not in choices:
            raise EmbeddingModelUnavailable(f"CLIP_PRECISION={precision!r}; use auto, fp32, fp16 or bf16.")
        return choices[precision]

    def _resolve_device(self, device: str) -> str:
        if device == "auto":
            return "cuda" if self._torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not self._torch.cuda.is_available():
            raise EmbeddingModelUnavailable(
                f"CLIP_DEVICE={device!r} but CUDA is not available here; use 'cpu' or 'auto'."
            )
        return device

    def preprocess(self, image: Image) -> Any:
        """OpenCLIP's own transform (resize, centre crop, normalise): thread-safe, run it ahead."""
        return self._preprocess(image)

    def embed_images(self, images: Sequence[Image]) -> Vectors:
        return self.embed_preprocessed([self.preprocess(image) for image in images])

    def embed_preprocessed(self, tensors: Sequence[Any]) -> Vectors:
        """One row per image, unit length, float32: an array from the model to Chroma, never lists."""
        if "image" not in self.towers:
            raise RuntimeError("This embedder was loaded for texts only.")
        parts = [
            self._encode(self._model.encode_image, self._torch.stack(list(tensors[start : start + self.batch_size])))
            for start in range(0, len(tensors), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dimensions), dtype=np.float32)

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        tokens = self._tokenizer(list(texts))
        encoder = self._encode_text_trimmed if self._can_trim_text() else self._model.encode_text
        return self._encode(encoder, tokens)

    def _can_trim_text(self) -> bool:
        model = self._model
        return (
            getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", None) == "argmax"
            and hasattr(model, "token_embedding")
            and hasattr(model, "positional_embedding")
        )

    def _encode_text_trimmed(self, tokens: Any) -> Any:
        """OpenCLIP's `encode_text` on the tokens actually used instead of all 77 positions. The text
        tower's attention is causal and the end-of-text position is the one pooled, so the padding
        after it cannot change the result: a search text of 8 tokens costs a tenth of the work."""
        from open_clip.transformer import text_global_pool

        model = self._model
        length = int((tokens != 0).sum(dim=1).max())
        tokens = tokens[:, :length]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = text_global_pool(model.ln_final(x), tokens, model.text_pool_type)
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, self._torch.nn.Linear) else x @ projection

    def _encode(self, encoder: Any, batch: Any) -> Vectors:
        torch = self._torch
        if self.device.startswith("cuda"):
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        if batch.is_floating_point():  # images; token ids stay integers
            batch = batch.to(self.dtype)
        with self._lock, torch.inference_mode():
            features = encoder(batch).float()
            features = features / features.norm(dim=-1, keepdim=True)
        return features.cpu().numpy()  # type: ignore[no-any-return]


def _hub_unreachable(spec: ModelSpec) -> str:
    """Why pretrained weights that are not in the download cache cannot be fetched now, in words, or
    "" when they can (or are cached, or named by path). One quick look instead of Hugging Face's
    client retrying every file for a minute before it gives up."""
    import httpx
    import huggingface_hub
    from open_clip import pretrained

    if spec.uses_random_weights or spec.checkpoint_path is not None or huggingface_hub.constants.HF_HUB_OFFLINE:
        return ""
    repository = (pretrained.get_pretrained_cfg(spec.name, spec.pretrained) or {}).get("hf_hub", "").strip("/")
    if not repository:
        return ""  # a tag downloaded from elsewhere: open_clip reports what goes wrong
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    if any(isinstance(huggingface_hub.try_to_load_from_cache(repository, name), str) for name in names):
        return ""
    endpoint = huggingface_hub.constants.ENDPOINT
    try:
        httpx.head(endpoint, timeout=10)
    except httpx.HTTPError as exc:
        return f"{endpoint} cannot be reached ({type(exc).__name__})"
    return ""


@contextlib.contextmanager
def _quiet_download_logs() -> Iterator[None]:
    """Hugging Face's client logs every retry of a failed download (dozens of lines without a
    network) and open_clip narrates each step; a failure is reported once, by the caller."""
    names = ("huggingface_hub", "open_clip", "urllib3", "httpx", "filelock")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    root = logging.getLogger()
    root.addFilter(_drop_open_clip_records)  # open_clip logs through the root logger itself
    try:
        yield
    finally:
        root.removeFilter(_drop_open_clip_records)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _drop_open_clip_records(record: logging.LogRecord) -> bool:
    return f"{os.sep}open_clip{os.sep}" not in record.pathname


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16); without it torch
    emulates bf16 and is slower than fp32."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


_loaded: dict[ModelSpec, ClipEmbedder] = {}
_loading = threading.Lock()
_active_spec: Callable[[], ModelSpec] = ModelSpec.from_settings


def configure(*, active_spec: Callable[[], ModelSpec]) -> None:
    """Names the model that embeds when a caller names none: by default the settings' (CLIP_MODEL,
    CLIP_PRETRAINED); the service gives the one its database records as active (`manage.py reindex`)."""
    global _active_spec
    _active_spec = active_spec


def active_spec() -> ModelSpec:
    return _active_spec()


def spec_for(*, name: str, pretrained: str) -> ModelSpec:
    """Another model and weights, run on this process's device, precision and batch size."""
    return replace(ModelSpec.from_settings(), name=name, pretrained=pretrained)


def get_embedder(need: Tower = "image", spec: ModelSpec | None = None) -> ClipEmbedder:
    """The process's model for `spec` (the active model when None), loaded on first use. Asking for
    texts only loads the text tower alone, unless the whole model is in memory already."""
    spec = spec or active_spec()
    with _loading:
        embedder = _loaded.get(spec)
        if embedder is None or need not in embedder.towers:
            towers: tuple[Tower, ...] = ("text",) if need == "text" else BOTH_TOWERS
            logger.info("Loading OpenCLIP %s (%s), %s", spec.name, spec.pretrained, " and ".join(towers))
            embedder = ClipEmbedder(spec, towers=towers)
            _loaded[spec] = embedder
        return embedder


def release_models(*, keep: Iterable[ModelSpec]) -> None:
    """Frees the models loaded for specs no longer in use (a model that was switched away from)."""
    wanted = set(keep)
    with _loading:
        for spec in [spec for spec in _loaded if spec not in wanted]:
            del _loaded[spec]


@functools.cache
def _input_side(name: str) -> int:
    import open_clip

    size = ((open_clip.get_model_config(name) or {}).get("vision_cfg") or {}).get("image_size", 0)
    return int(size[0] if isinstance(size, tuple | list) else size)


def input_side(spec: ModelSpec | None = None) -> int:
    """The model's input size (224 for ViT-B-32), read from its configuration without loading
    weights; 0 when unknown."""
    return _input_side((spec or active_spec()).name)


def current_model_key() -> str:
    return model_key(active_spec())


def uses_random_weights() -> bool:
    return active_spec().uses_random_weights
