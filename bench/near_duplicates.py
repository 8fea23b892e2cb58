"""How far a re-encoded, resized or cropped copy of a photograph lands from its original, against
how far unrelated photographs are from each other: the measurement behind NEAR_DUPLICATE_DISTANCE.

    .venv/bin/python -m bench.near_duplicates [--model ViT-B-32]

Photographs: scikit-image's and scikit-learn's bundled ones. Vectors: the service's own embedder on
the benchmark checkpoint (random weights unless CLIP_PRETRAINED names trained ones), so the figures
describe that model; the printout says which."""

from __future__ import annotations

import argparse
import io
import itertools
import os

import numpy as np
from PIL import Image

from bench._common import machine, percentile, setup_django


def photographs() -> dict[str, Image.Image]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {
        name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
    }
    for name, pixels in zip(("china", "flower"), load_sample_images().images, strict=True):
        photos[name] = Image.fromarray(pixels).convert("RGB")
    return photos


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def resized(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.LANCZOS)


def cropped(image: Image.Image, keep: float, *, corner: bool = False) -> Image.Image:
    """`keep` of each side, centred (or from the top-left corner)."""
    w, h = round(image.width * keep), round(image.height * keep)
    left, top = (0, 0) if corner else ((image.width - w) // 2, (image.height - h) // 2)
    return image.crop((left, top, left + w, top + h))


VARIANTS = {
    "jpeg q90": lambda im: jpeg(im, 90),
    "jpeg q75": lambda im: jpeg(im, 75),
    "jpeg q50": lambda im: jpeg(im, 50),
    "jpeg q30": lambda im: jpeg(im, 30),
    "resized 1/2": lambda im: jpeg(resized(im, 0.5), 85),
    "resized 1/4": lambda im: jpeg(resized(im, 0.25), 85),
    "crop 90% centre": lambda im: jpeg(cropped(im, 0.9), 85),
    "crop 80% centre": lambda im: jpeg(cropped(im, 0.8), 85),
    "crop 80% corner": lambda im: jpeg(cropped(im, 0.8, corner=True), 85),
    "crop 90% + 1/2 + q60": lambda im: jpeg(resized(cropped(im, 0.9), 0.5), 60),
    "crop 60% corner (a different framing)": lambda im: jpeg(cropped(im, 0.6, corner=True), 85),
    "mirrored (a different picture)": lambda im: jpeg(im.transpose(Image.FLIP_LEFT_RIGHT), 85),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()
    setup_django(model=args.model)
    from vectors.embedding import get_embedder

    embedder = get_embedder("image")
    photos = photographs()
    names = list(photos)
    originals = dict(zip(names, embedder.embed_images([photos[n] for n in names]), strict=True))
    print(f"{args.model}, weights {os.environ['CLIP_PRETRAINED']}; {machine()}")
    print(f"{len(photos)} photographs: {', '.join(names)}\n")
    print(f"{'copy':40s} {'min':>7s} {'median':>7s} {'max':>7s}   cosine distance to its original")
    for label, make in VARIANTS.items():
        copies = embedder.embed_images([make(photos[n]) for n in names])
        distances = [1 - float(np.dot(originals[n], v)) for n, v in zip(names, copies, strict=True)]
        print(f"{label:40s} {min(distances):7.4f} {percentile(distances, 50):7.4f} {max(distances):7.4f}")
    pairs = {(a, b): 1 - float(np.dot(originals[a], originals[b])) for a, b in itertools.combinations(names, 2)}
    unrelated = list(pairs.values())
    print(
        f"{'unrelated photographs (all pairs)':40s} {min(unrelated):7.4f} {percentile(unrelated, 50):7.4f} "
        f"{max(unrelated):7.4f}"
    )
    closest = sorted(pairs, key=pairs.__getitem__)[:3]
    print("closest unrelated pairs: " + "; ".join(f"{a}/{b} {pairs[a, b]:.4f}" for a, b in closest))


if __name__ == "__main__":
    main()
