"""The upload tests' scene: a picture made in code whose three flat regions show whether it was
turned or decoded in the wrong colours, and how a stored vector is compared with it."""

from __future__ import annotations

import numpy as np

ORIENTATION = 0x0112  # the EXIF tag that says how to turn the stored pixels upright

W, H = 96, 64
RED, BLUE, GREEN, WHITE = (200, 30, 30), (30, 30, 200), (30, 170, 60), (255, 255, 255)


def scene() -> np.ndarray:
    """Three flat regions (left red, right blue, a green band on top): their places change when
    the picture is turned, and their colours when it is decoded wrong."""
    array = np.zeros((H, W, 3), dtype=np.uint8)
    array[:, : W // 2], array[:, W // 2 :], array[: H // 3] = RED, BLUE, GREEN
    return array


def with_transparent_band(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scene with its top band fully transparent: (RGBA pixels, what a person sees on white)."""
    alpha = np.full((H, W, 1), 255, dtype=np.uint8)
    alpha[: H // 3] = 0
    rgba = np.concatenate([array, alpha], axis=2)
    rgba[: H // 3, :, :3] = 0  # transparent black: shown as the white page, never as black
    seen = array.copy()
    seen[: H // 3] = WHITE
    return rgba, seen


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
