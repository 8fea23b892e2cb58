"""Served copies carry no EXIF or XMP location: every door serves originals and thumbnails without
them, keeping the pixels and only the orientation; the stripping itself is lossless for PNG, WebP
and GIF."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image, ImageSequence

from ingestion.imaging import without_metadata
from ingestion.models import ImageAsset
from tests.conftest import api, login
from tests.factories import png_chunk
from tests.ingestion.scene import ORIENTATION, WHITE, H, W, cosine, scene, with_transparent_band
from tests.ingestion.uploads import API_IMAGES, as_upload, body_of, encode, pixels, upload_url
from vectors import index
from vectors.embedding import get_embedder

GPS_IFD = 0x8825


def png_chunk_types(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def exif_with_location(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if orientation != 1:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 24.0), "E", (2.0, 21.0, 3.0)
    return exif


def png_with_location(orientation: int = 1) -> bytes:
    data = encode(Image.fromarray(scene()), "PNG", exif=exif_with_location(orientation))
    text = png_chunk(b"tEXt", b"Location\x00Paris, 48.8566 N 2.3522 E") + png_chunk(b"tIME", bytes(7))
    itxt = png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>GPSLatitude</x:xmpmeta>")
    return data[:33] + text + itxt + data[33:]


def webp_with_location(orientation: int = 1) -> bytes:
    rgba, _ = with_transparent_band(scene())
    xmp = b"<x:xmpmeta><exif:GPSLatitude>48,51.4N</exif:GPSLatitude></x:xmpmeta>"
    image = Image.fromarray(rgba, mode="RGBA")
    return encode(image, "WEBP", lossless=True, exif=exif_with_location(orientation), xmp=xmp)


WITH_LOCATION = {"png": png_with_location, "webp": webp_with_location}
TELLTALES = (b"Exif", b"Paris", b"GPSLatitude", b"PhoneMaker", b"xmpmeta")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", list(WITH_LOCATION))
def test_served_pngs_and_webps_carry_no_location_and_keep_their_pixels(acme, bob, fmt):
    data = WITH_LOCATION[fmt]()
    assert GPS_IFD in Image.open(io.BytesIO(data)).getexif()
    client = api(bob, acme)
    response = client.post(API_IMAGES, {"file": as_upload(f"trip.{fmt}", data)}, format="multipart")
    assert response.status_code == 201
    asset_id = response.json()["id"]
    served = {
        "page original": login(bob).get(reverse("ingestion:original", args=[acme.slug, asset_id])),
        "page thumbnail": login(bob).get(reverse("ingestion:thumbnail", args=[acme.slug, asset_id])),
        "api file": client.get(response.json()["links"]["file"]),
        "api thumbnail": client.get(response.json()["links"]["thumbnail"]),
    }
    for door, reply in served.items():
        body = body_of(reply)
        picture = Image.open(io.BytesIO(body))
        assert reply["Content-Type"] == Image.MIME[picture.format], door
        assert reply["X-Content-Type-Options"] == "nosniff", door
        assert "sandbox" in reply["Content-Security-Policy"], door
        assert not picture.getexif(), door
        assert not any(telltale in body for telltale in TELLTALES), door
    original = body_of(client.get(response.json()["links"]["file"]))
    assert Image.open(io.BytesIO(original)).format == fmt.upper()
    assert np.array_equal(pixels(original), pixels(data))

    again = client.post(API_IMAGES, {"file": as_upload(f"again.{fmt}", data)}, format="multipart")
    assert again.status_code == 200 and again.json()["id"] == asset_id  # the upload's bytes are what is recognised
    [result] = (
        login(bob)
        .post(upload_url(acme), {"images": [as_upload("x", data)]}, HTTP_ACCEPT="application/json")
        .json()["results"]
    )
    assert result["duplicate"] is True
    assert ImageAsset.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", list(WITH_LOCATION))
def test_a_rotated_png_or_webp_keeps_only_its_orientation(acme, bob, fmt):
    data = WITH_LOCATION[fmt](orientation=6)
    response = login(bob).post(
        upload_url(acme), {"images": [as_upload(f"turned.{fmt}", data)]}, HTTP_ACCEPT="application/json"
    )
    [result] = response.json()["results"]
    assert result["image"]["status"] == "ready"
    asset = ImageAsset.objects.get()
    assert (asset.width, asset.height) == (H, W)
    original = body_of(login(bob).get(reverse("ingestion:original", args=[acme.slug, asset.id])))
    assert dict(Image.open(io.BytesIO(original)).getexif()) == {ORIENTATION: 6}
    assert np.array_equal(pixels(original), pixels(data))
    [stored_vector] = index.fetch_vectors(tenant=acme, ids=[str(asset.id)]).values()
    upright = Image.open(io.BytesIO(data)).convert("RGBA").transpose(Image.Transpose.ROTATE_270)
    on_white = Image.new("RGB", upright.size, WHITE)
    on_white.paste(upright, mask=upright.getchannel("A"))
    [expected] = get_embedder().embed_images([on_white])
    assert cosine(stored_vector, expected) >= 0.999


# The stripping itself: lossless for every kind of pixel data.


def png_variants() -> dict[str, Image.Image]:
    sixteen = Image.fromarray(np.arange(W * H, dtype=np.uint16).reshape(H, W) * 7)
    palette = Image.fromarray(scene()).quantize(colors=3)
    return {"16-bit": sixteen, "palette": palette, "rgba": Image.fromarray(with_transparent_band(scene())[0])}


@pytest.mark.parametrize("variant", ["16-bit", "palette", "palette+tRNS", "rgba"])
def test_png_metadata_is_removed_chunk_by_chunk_leaving_the_rest_byte_for_byte(variant):
    image = png_variants()[variant.split("+")[0]]
    save: dict[str, object] = {"exif": exif_with_location()}
    if variant == "palette+tRNS":
        save["transparency"] = 1
    data = png_with_location_chunks(encode(image, "PNG", **save))
    stripped = without_metadata(data, "PNG")
    metadata = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
    assert png_chunk_types(stripped) == [kind for kind in png_chunk_types(data) if kind not in metadata]
    for kind in {b"IHDR", b"PLTE", b"tRNS", b"IDAT"} & set(png_chunk_types(data)):
        assert chunk_bytes(stripped, kind) == chunk_bytes(data, kind)
    assert np.array_equal(pixels(stripped), pixels(data))
    reopened = Image.open(io.BytesIO(stripped))
    assert reopened.mode == Image.open(io.BytesIO(data)).mode
    assert not reopened.getexif() and not getattr(reopened, "text", {})


def png_with_location_chunks(data: bytes) -> bytes:
    extra = (
        png_chunk(b"tEXt", b"Comment\x00somewhere")
        + png_chunk(b"zTXt", b"Location\x00\x00" + zlib.compress(b"Paris"))
        + png_chunk(b"iTXt", b"Author\x00\x00\x00\x00\x00me")
        + png_chunk(b"tIME", bytes(7))
    )
    return data[:33] + extra + data[33:]


def chunk_bytes(data: bytes, kind: bytes) -> list[bytes]:
    found, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == kind:
            found.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return found


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_metadata_chunks_and_flags_are_removed_losslessly(lossless):
    rgba, _ = with_transparent_band(scene())
    data = encode(Image.fromarray(rgba), "WEBP", lossless=lossless, exif=exif_with_location(), xmp=b"<x:xmpmeta/>")
    flags = data[20]
    assert flags & 0x08 and flags & 0x04  # EXIF and XMP announced in the VP8X header
    stripped = without_metadata(data, "WEBP")
    assert stripped[:4] == b"RIFF" and int.from_bytes(stripped[4:8], "little") == len(stripped) - 8
    assert stripped[20] == flags & ~0x0C
    assert b"EXIF" not in stripped and b"XMP " not in stripped and b"xmpmeta" not in stripped
    assert np.array_equal(pixels(stripped), pixels(data))
    assert not Image.open(io.BytesIO(stripped)).getexif()


def test_gif_comments_and_xmp_are_removed_and_every_frame_kept():
    frames = [Image.fromarray(scene()), Image.fromarray(255 - scene())]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"at Paris")
    comment = data.index(b"\x21\xfe")
    magic_trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"  # how XMP packets sit in GIF sub-blocks
    xmp = b"\x21\xff\x0bXMP DataXMP" + b"<x:xmpmeta>GPSLatitude 48,51.4N</x:xmpmeta>" + magic_trailer
    data = data[:comment] + xmp + data[comment:]
    stripped = without_metadata(data, "GIF")
    assert b"at Paris" not in stripped and b"XMP DataXMP" not in stripped and b"GPSLatitude" not in stripped
    before, after = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(stripped))
    assert after.n_frames == before.n_frames == 2
    for a, b in zip(ImageSequence.Iterator(before), ImageSequence.Iterator(after), strict=True):
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
