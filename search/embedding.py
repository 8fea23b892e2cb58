"""The one door to torch and open_clip: turns RGB images and texts into unit-length vectors.

The vectors are the ones Chroma's `OpenCLIPEmbeddingFunction` gives for the same model and
checkpoint (same preprocessing, same normalisation), computed in batches instead of one by one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random"


class EmbeddingModelUnavailable(ImproperlyConfigured):
    """The configured weights cannot be loaded; the message says which setting to change."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    pretrained: str
    device: str = "auto"
    seed: int = 0

    @classmethod
    def from_settings(cls) -> ModelSpec:
        return cls(
            name=settings.CLIP_MODEL,
            pretrained=settings.CLIP_PRETRAINED,
            device=settings.CLIP_DEVICE,
            seed=settings.CLIP_RANDOM_SEED,
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
    """An OpenCLIP model loaded once per process, embedding in batches."""

    def __init__(self, spec: ModelSpec) -> None:
        import open_clip
        import torch

        self.spec = spec
        self._torch = torch
        self.device = self._resolve_device(spec.device)
        if spec.name not in open_clip.list_models():
            raise EmbeddingModelUnavailable(f"CLIP_MODEL={spec.name!r} is not an OpenCLIP model name; try 'ViT-B-32'.")
        self.model_key = model_key(spec)
        try:
            if spec.uses_random_weights:
                torch.manual_seed(spec.seed)
                model, _, preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=None)
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=spec.pretrained)
        except Exception as exc:  # open_clip raises RuntimeError, OSError, HTTP errors...
            raise EmbeddingModelUnavailable(
                f"Could not load the weights CLIP_PRETRAINED={spec.pretrained!r} for CLIP_MODEL={spec.name!r}: "
                f"{exc}. Allow the download (Hugging Face) on first run, or set CLIP_PRETRAINED to the path of "
                f"a local checkpoint file, or set CLIP_PRETRAINED={RANDOM_WEIGHTS} for untrained weights whose "
                "results mean nothing."
            ) from exc
        self._model: Any = model.eval().to(self.device)
        self._preprocess: Any = preprocess
        self._tokenizer: Any = open_clip.get_tokenizer(spec.name)
        self._lock = threading.Lock()
        self.dimensions = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else 0

    def _resolve_device(self, device: str) -> str:
        if device == "auto":
            return "cuda" if self._torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not self._torch.cuda.is_available():
            raise EmbeddingModelUnavailable(
                f"CLIP_DEVICE={device!r} but CUDA is not available here; use 'cpu' or 'auto'."
            )
        return device

    def embed_images(self, images: Sequence[Image]) -> list[list[float]]:
        if not images:
            return []
        batch = self._torch.stack([self._preprocess(image) for image in images])
        return self._encode(self._model.encode_image, batch)

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._encode(self._model.encode_text, self._tokenizer(list(texts)))

    def _encode(self, encoder: Any, batch: Any) -> list[list[float]]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            features = encoder(batch.to(self.device)).float()
            features = features / features.norm(dim=-1, keepdim=True)
        return features.cpu().tolist()  # type: ignore[no-any-return]


@functools.cache
def get_embedder() -> ClipEmbedder:
    spec = ModelSpec.from_settings()
    logger.info("Loading OpenCLIP %s (%s)", spec.name, spec.pretrained)
    return ClipEmbedder(spec)


def current_model_key() -> str:
    return model_key(ModelSpec.from_settings())


def uses_random_weights() -> bool:
    return ModelSpec.from_settings().uses_random_weights
