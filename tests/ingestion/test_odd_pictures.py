"""Odd but honest pictures (CMYK, 16-bit, palette, alpha, animated, EXIF- or XMP-rotated) end ready,
shown upright and embedded as a person sees them."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image, ImageSequence

from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import login
from tests.ingestion.scene import BLUE, GREEN, ORIENTATION, RED, WHITE, H, W, cosine, scene, with_transparent_band
from tests.ingestion.uploads import as_upload, body_of, encode, pixels, upload_url
from vectors import index
from vectors.embedding import get_embedder

XMP_ROTATED = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)

# A point inside each region, as (x, y): top band, bottom left, bottom right.
PROBES = ((W // 2, H // 6), (W // 4, 3 * H // 4), (3 * W // 4, 3 * H // 4))


def cmyk_jpeg() -> tuple[bytes, np.ndarray]:
    return encode(Image.fromarray(scene()).convert("CMYK"), "JPEG", quality=95), scene()


def grey_16_bit_png() -> tuple[bytes, np.ndarray]:
    grey = np.asarray(Image.fromarray(scene()).convert("L"))
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    return encode(sixteen, "PNG"), np.repeat(grey[:, :, None], 3, axis=2)


def palette_png(transparent: bool) -> tuple[bytes, np.ndarray]:
    indices = np.zeros((H, W), dtype=np.uint8)
    indices[:, W // 2 :], indices[: H // 3] = 1, 2
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([*RED, *BLUE, *GREEN] + [0] * (253 * 3))
    if not transparent:
        return encode(image, "PNG"), scene()
    return encode(image, "PNG", transparency=2), with_transparent_band(scene())[1]


def rgba_png() -> tuple[bytes, np.ndarray]:
    rgba, seen = with_transparent_band(scene())
    return encode(Image.fromarray(rgba, mode="RGBA"), "PNG"), seen


def la_png() -> tuple[bytes, np.ndarray]:
    grey = np.asarray(Image.fromarray(scene()).convert("L"))
    alpha = np.full((H, W), 255, dtype=np.uint8)
    alpha[: H // 3] = 0
    seen = np.repeat(grey[:, :, None], 3, axis=2)
    seen[: H // 3] = WHITE
    return encode(Image.fromarray(np.stack([grey, alpha], axis=2), mode="LA"), "PNG"), seen


def webp_with_alpha() -> tuple[bytes, np.ndarray]:
    rgba, seen = with_transparent_band(scene())
    return encode(Image.fromarray(rgba, mode="RGBA"), "WEBP", lossless=True), seen


def animated_gif() -> tuple[bytes, np.ndarray]:
    second = np.zeros((H, W, 3), dtype=np.uint8)
    second[:] = BLUE
    second[H // 2 :, : W // 2] = WHITE
    frames = [Image.fromarray(scene()), Image.fromarray(second)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0), scene()


def rotated_jpeg(orientation: int, *, by_xmp: bool = False) -> tuple[bytes, np.ndarray]:
    """The scene stored turned, as a camera held sideways stores it, with the tag that turns it back."""
    turn, back = {6: (Image.Transpose.ROTATE_90, -1), 8: (Image.Transpose.ROTATE_270, 1)}[orientation]
    stored = Image.fromarray(scene()).transpose(turn)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    tag: dict[str, object] = {"xmp": XMP_ROTATED} if by_xmp else {"exif": exif}
    data = encode(stored, "JPEG", quality=95, subsampling=0, **tag)
    return data, np.ascontiguousarray(np.rot90(pixels(data), k=back))  # the decoded pixels, turned upright


ODD: dict[str, tuple[str, Callable[[], tuple[bytes, np.ndarray]]]] = {
    "cmyk-jpeg": ("print.jpg", cmyk_jpeg),
    "16-bit-grey-png": ("scan.png", grey_16_bit_png),
    "palette-png": ("indexed.png", lambda: palette_png(transparent=False)),
    "palette-png-with-transparency": ("indexed-alpha.png", lambda: palette_png(transparent=True)),
    "rgba-png": ("alpha.png", rgba_png),
    "la-png": ("grey-alpha.png", la_png),
    "webp-with-alpha": ("alpha.webp", webp_with_alpha),
    "animated-gif": ("anim.gif", animated_gif),
    "exif-orientation-6": ("portrait6.jpg", lambda: rotated_jpeg(6)),
    "exif-orientation-8": ("portrait8.jpg", lambda: rotated_jpeg(8)),
    "xmp-orientation-6": ("portrait-xmp.jpg", lambda: rotated_jpeg(6, by_xmp=True)),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", list(ODD))
def test_an_odd_picture_ends_ready_and_embedded_as_a_person_sees_it(acme, bob, case):
    filename, make = ODD[case]
    data, seen = make()
    client = login(bob)
    response = client.post(upload_url(acme), {"images": [as_upload(filename, data)]}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201, response.json()
    [result] = response.json()["results"]
    assert result["error"] is None and result["image"]["status"] == "ready"
    asset = ImageAsset.objects.get(id=result["image"]["id"])
    assert asset.status == AssetStatus.READY
    assert (asset.width, asset.height) == (W, H)

    thumbnail = client.get(reverse("ingestion:thumbnail", args=[acme.slug, asset.id]))
    assert thumbnail["Content-Type"] == "image/jpeg" and thumbnail["X-Content-Type-Options"] == "nosniff"
    shown = Image.open(io.BytesIO(body_of(thumbnail)))
    assert (shown.format, shown.mode, shown.size) == ("JPEG", "RGB", (W, H))  # upright
    for x, y in PROBES:
        assert np.abs(np.asarray(shown.getpixel((x, y)), dtype=int) - seen[y, x]).max() <= 16, (x, y)

    [stored_vector] = index.fetch_vectors(tenant=acme, ids=[str(asset.id)]).values()
    embedder = get_embedder()
    [expected] = embedder.embed_images([Image.fromarray(seen)])
    assert cosine(stored_vector, expected) >= 0.999

    if case.startswith(("exif", "xmp")):
        original = client.get(reverse("ingestion:original", args=[acme.slug, asset.id]))
        assert Image.open(io.BytesIO(body_of(original))).size == (H, W)  # the pixels stay stored turned
        [sideways] = embedder.embed_images([Image.fromarray(seen).transpose(Image.Transpose.ROTATE_90)])
        assert cosine(stored_vector, sideways) < 0.999
    if case == "animated-gif":
        second_frame = ImageSequence.Iterator(Image.open(io.BytesIO(data)))[1].convert("RGB")
        [other] = embedder.embed_images([second_frame])
        assert cosine(stored_vector, other) < 0.999
