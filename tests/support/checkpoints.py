"""Random-weight OpenCLIP checkpoints: what the tests and the benchmarks load through the same code
path as trained weights, without downloading anything."""

from __future__ import annotations

import os
from pathlib import Path


def model_checkpoint(model: str, seed: int, path: Path) -> Path:
    """`model` initialised from `seed` and saved once at `path` as a checkpoint file."""
    if not path.exists():
        import open_clip
        import torch

        torch.manual_seed(seed)
        weights = open_clip.create_model(model, pretrained=None).state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")  # two processes making it at once never clash
        torch.save({"state_dict": weights}, partial)
        os.replace(partial, path)
    return path
