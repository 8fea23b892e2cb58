"""Hostile and odd uploads, through every door: the upload page's form POST, the JSON answer its
script asks for, and the REST API.

Hostile files are refused with a reason that names the problem and store nothing, while a good file
sent beside them still goes through. Odd but honest pictures (CMYK, 16-bit, palette, alpha,
animated, EXIF-rotated) end ready, embedded as a person sees them. Served copies carry no EXIF
location, and every text a user typed is shown escaped.
"""

from __future__ import annotations

import html
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape
from PIL import Image, ImageSequence

from ingestion.imaging import without_metadata
from ingestion.models import AssetStatus, ImageAsset
from ingestion.uploadhandlers import early_refusals
from search import index
from search.embedding import get_embedder
from tenants.services import tenant_create
from tests.conftest import api, login
from tests.factories import image_bytes, png_chunk, png_with_declared_size

API_IMAGES = "/api/v1/images/"
GPS_IFD = 0x8825
ORIENTATION = 0x0112
XMP_ROTATED = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_chunk_types(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def plain(text: str) -> str:
    return html.unescape(text).replace("\xa0", " ")


def upload_url(tenant) -> str:
    return reverse("ingestion:upload", args=[tenant.slug])


def as_upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def good_png() -> SimpleUploadedFile:
    return as_upload("good.png", image_bytes("PNG", size=(8, 8), color=(20, 140, 60)))


# --- hostile files: each refused with what is wrong with it --------------------------------------


def photo_jpeg() -> bytes:
    """A noisy photo-like JPEG, so its scan data is long enough to cut or damage in the middle."""
    rng = np.random.default_rng(7)
    return encode(Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)), "JPEG", quality=90)


def jpeg_cut_in_half() -> bytes:
    data = photo_jpeg()
    return data[: len(data) // 2]


def jpeg_with_corrupt_scan() -> bytes:
    """The middle of the scan overwritten by the start of another file (a broken concatenation or a
    damaged disk block): the decoder meets markers where compressed pixels should be."""
    data = bytearray(photo_jpeg())
    middle = len(data) // 2
    intruder = image_bytes("JPEG")[:200]
    data[middle : middle + len(intruder)] = intruder
    return bytes(data)


def gif_declaring_65535_squared() -> bytes:
    data = bytearray(image_bytes("GIF", size=(8, 8)))
    data[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 65535, 65535)  # the frame
    return bytes(data)


def png_with_text_bomb() -> bytes:
    """A tiny PNG whose compressed comment inflates to 5 MB when read (Pillow stops at 1 MB)."""
    data = image_bytes("PNG", size=(8, 8))
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 5_000_000, 9))
    return data[:33] + bomb + data[33:]


SCRIPT = b"<html><body><script>alert(document.cookie)</script></body></html>"


def png_header_then_html() -> bytes:
    return image_bytes("PNG")[:33] + SCRIPT  # signature and IHDR, then a web page


def png_then_html() -> bytes:
    return image_bytes("PNG") + SCRIPT  # a whole valid PNG with a web page after its IEND


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"


def psd() -> bytes:
    header = struct.pack(">4sH6xHIIHH", b"8BPS", 1, 3, 4, 4, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"\x80" * 48


def fits() -> bytes:
    cards = ["SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 2", "NAXIS1  = 4", "NAXIS2  = 4", "END"]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode()
    return header + bytes(16).ljust(2880, b"\x00")


def heic() -> bytes:
    return struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic" + bytes(64)


EXACT_PNG = image_bytes("PNG", color=(90, 90, 200))


@dataclass(frozen=True)
class Hostile:
    id: str
    filename: str
    make: Callable[[], bytes]
    reason: str  # the part of the message that names the problem
    max_bytes: int | None = None  # UPLOAD_MAX_BYTES for this case


HOSTILE = [
    Hostile("png-bomb", "bomb.png", lambda: png_with_declared_size(50_000, 50_000), "declares 2500 megapixels"),
    Hostile("gif-bomb", "bomb.gif", gif_declaring_65535_squared, "declares 4295 megapixels"),
    Hostile("png-text-bomb", "comment.png", png_with_text_bomb, "expands to more than 1.0 MB"),
    Hostile("html-named-png", "cat.png", lambda: SCRIPT, "the content is an HTML page"),
    Hostile(
        "svg-named-png",
        "logo.png",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>',
        "the content is an SVG or XML document",
    ),
    Hostile("png-header-then-html", "polyglot.png", png_header_then_html, "starts like a PNG image but cannot be"),
    Hostile("png-then-html", "polyglot.png", png_then_html, f"followed by {len(SCRIPT)} bytes of other data"),
    Hostile("jpeg-cut-in-half", "half.jpg", jpeg_cut_in_half, "truncated"),
    Hostile(
        "jpeg-corrupt-scan", "damaged.jpg", jpeg_with_corrupt_scan, "cannot be decoded: it is truncated or corrupt"
    ),
    Hostile("zero-bytes", "empty.jpg", lambda: b"", "The file is empty."),
    Hostile(
        "one-byte-over-the-limit",
        "big.png",
        lambda: EXACT_PNG,
        f"larger than the limit of {len(EXACT_PNG) - 1} bytes",
        max_bytes=len(EXACT_PNG) - 1,
    ),
    Hostile("eps", "drawing.jpg", eps, "a PostScript (EPS) file"),
    Hostile("psd", "layers.png", psd, "a Photoshop (PSD) file"),
    Hostile("fits", "galaxy.jpg", fits, "a FITS file"),
    Hostile("tiff", "scan.jpg", lambda: image_bytes("TIFF"), "a TIFF image"),
    Hostile("heic", "iphone.jpg", heic, "an HEIC or AVIF image"),
]


def post_files(door: str, client: Any, tenant, files: list[SimpleUploadedFile], **extra: Any) -> Any:
    """One upload through a door: the page's form POST, the JSON its script asks for, or the API."""
    if door == "api":
        [file] = files
        return client.post(API_IMAGES, {"file": file}, format="multipart", **extra)
    headers = {"HTTP_ACCEPT": "application/json"} if door == "json" else {}
    return client.post(upload_url(tenant), {"images": files}, **headers, **extra)


def client_for(door: str, user, tenant) -> Any:
    return api(user, tenant) if door == "api" else login(user)


@pytest.mark.django_db
@pytest.mark.parametrize("door", ["form", "json", "api"])
@pytest.mark.parametrize("case", HOSTILE, ids=[case.id for case in HOSTILE])
def test_a_hostile_file_is_refused_with_its_reason_and_stores_nothing(acme, bob, settings, media_files, case, door):
    if case.max_bytes is not None:
        settings.UPLOAD_MAX_BYTES = case.max_bytes
    data = case.make()
    client = client_for(door, bob, acme)

    response = post_files(door, client, acme, [as_upload(case.filename, data)])
    assert response.status_code == 400  # on the page: the form again with the reason, not a redirect
    if door == "api":
        assert response["Content-Type"] == "application/json"
        [message] = response.json()["file"]
        assert case.reason in plain(message)
    elif door == "json":
        [result] = response.json()["results"]
        assert (result["filename"], result["image"]) == (case.filename, None)
        assert case.reason in plain(result["error"])
    else:
        page = plain(response.content.decode())
        assert f"{case.filename}: refused." in page and case.reason in page
    assert not ImageAsset.objects.exists()
    assert media_files() == []

    if door == "api":
        return  # one file per API request: the page is where several go together
    response = post_files(door, client, acme, [as_upload(case.filename, data), good_png()], follow=door == "form")
    good = ImageAsset.objects.get()
    assert good.original_filename == "good.png"
    assert {path.name for path in media_files()} == {f"{good.id}.png", f"{good.id}.jpg"}
    if door == "json":
        assert response.status_code == 201
        refused, stored = response.json()["results"]
        assert case.reason in plain(refused["error"]) and refused["image"] is None
        assert stored["error"] is None and stored["image"]["id"] == str(good.id)
    else:
        assert response.redirect_chain == [(upload_url(acme), 302)] and response.status_code == 200
        page = plain(response.content.decode())
        assert f"{case.filename}: refused." in page and case.reason in page
        assert "1 image uploaded" in page


@pytest.mark.django_db
@pytest.mark.parametrize("door", ["form", "api"])  # the page's JSON answer: test_upload_page.py
def test_a_file_far_over_the_limit_is_refused_while_it_arrives(acme, bob, settings, media_files, door):
    settings.UPLOAD_MAX_BYTES = 64 * 1024
    huge = as_upload("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(4 * 1024 * 1024))
    response = post_files(door, client_for(door, bob, acme), acme, [huge])
    assert response.status_code == 400
    if door == "api":
        assert plain(response.json()["file"][0]) == "The file is larger than the limit of 64.0 KB."
    else:
        assert "huge.png: refused. The file is larger than the limit of 64.0 KB." in plain(response.content.decode())
    [refusal] = early_refusals(response.wsgi_request)
    assert refusal.bytes_read < 512 * 1024  # the other 3.5 MB went past without being kept
    assert not ImageAsset.objects.exists() and media_files() == []


@pytest.mark.django_db
def test_a_file_exactly_at_the_limit_is_accepted(acme, bob, settings):
    settings.UPLOAD_MAX_BYTES = len(EXACT_PNG)
    response = api(bob, acme).post(API_IMAGES, {"file": as_upload("exact.png", EXACT_PNG)}, format="multipart")
    assert response.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\windows\\win.ini.png", "win.ini.png"),
        ("nul\x00byte.png", "nulbyte.png"),
        ("é" * 300 + ".png", "é" * 251 + ".png"),
        ("\u202egnp.exe", "gnp.exe"),  # a right-to-left override would show it as "exe.png"
    ],
)
def test_the_api_takes_a_hostile_filename_as_a_label_only(acme, bob, settings, media_files, sent, shown):
    response = api(bob, acme).post(API_IMAGES, {"file": as_upload(sent, image_bytes("PNG"))}, format="multipart")
    assert response.status_code == 201
    assert response.json()["filename"] == shown
    asset = ImageAsset.objects.get()
    tenant_folder = (Path(settings.MEDIA_ROOT) / "tenants" / str(acme.vector_uuid)).resolve()
    stored = [path.resolve() for path in media_files()]
    assert len(stored) == 2 and all(path.is_relative_to(tenant_folder) for path in stored)
    assert {path.name for path in stored} == {f"{asset.id}.png", f"{asset.id}.jpg"}


@pytest.mark.django_db
def test_a_refused_file_with_a_hostile_name_is_reported_escaped(acme, bob):
    name = '"><img src=x onerror=alert(1)>.png'
    response = login(bob).post(upload_url(acme), {"images": [as_upload(name, SCRIPT)]})
    assert response.status_code == 400
    page = response.content.decode()
    assert "<img src=x onerror" not in page
    assert f"{escape(name)}: refused. Unsupported file type: the content is an HTML page." in page


# --- odd but honest pictures: each ends ready, embedded as a person sees it ----------------------

W, H = 96, 64
RED, BLUE, GREEN, WHITE = (200, 30, 30), (30, 30, 200), (30, 170, 60), (255, 255, 255)


def scene() -> np.ndarray:
    """Three flat regions (left red, right blue, a green band on top): their places change when
    the picture is turned, and their colours when it is decoded wrong."""
    array = np.zeros((H, W, 3), dtype=np.uint8)
    array[:, : W // 2], array[:, W // 2 :], array[: H // 3] = RED, BLUE, GREEN
    return array


# A point inside each region, as (x, y): top band, bottom left, bottom right.
PROBES = ((W // 2, H // 6), (W // 4, 3 * H // 4), (3 * W // 4, 3 * H // 4))


def with_transparent_band(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scene with its top band fully transparent: (RGBA pixels, what a person sees on white)."""
    alpha = np.full((H, W, 1), 255, dtype=np.uint8)
    alpha[: H // 3] = 0
    rgba = np.concatenate([array, alpha], axis=2)
    rgba[: H // 3, :, :3] = 0  # transparent black: shown as the white page, never as black
    seen = array.copy()
    seen[: H // 3] = WHITE
    return rgba, seen


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


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


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


# --- served copies carry no EXIF location --------------------------------------------------------


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


# --- user-supplied text is escaped everywhere ----------------------------------------------------

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
HOSTILE_NAME = '"><img src=x onerror=alert(1)>.png'  # file names lose everything up to a "/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_supplied_text_is_escaped_on_every_page_and_data_in_json(alice, payload):
    tenant = tenant_create(slug="xss", name=payload, owner=alice)
    client = login(alice)
    response = client.post(
        upload_url(tenant),
        {
            "images": [as_upload(HOSTILE_NAME, image_bytes("PNG"))],
            "category": payload,
            "source": payload,
            "tags": payload,
        },
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    asset = ImageAsset.objects.get()
    assert asset.status == AssetStatus.READY
    client.post(reverse("tenants:tokens", args=[tenant.slug]), {"name": payload}, follow=True)

    pages = {
        "dashboard": reverse("tenants:dashboard", args=[tenant.slug]),
        "upload": upload_url(tenant),
        "search results": reverse("search:search", args=[tenant.slug]) + "?q=a+photo",
        "detail": reverse("search:detail", args=[tenant.slug, asset.id]),
        "more like this": reverse("search:similar", args=[tenant.slug, asset.id]),
        "tokens": reverse("tenants:tokens", args=[tenant.slug]),
    }
    for name, url in pages.items():
        reply = client.get(url)
        assert reply.status_code == 200, name
        page = reply.content.decode()
        for raw in (payload, HOSTILE_NAME, "<img src=x", "<script>alert"):
            assert raw not in page, (name, raw)
        assert escape(payload) in page, name
    assert str(asset.id) in client.get(pages["search results"]).content.decode()  # the image was really listed
    for name in ("dashboard", "upload", "detail"):
        assert escape(HOSTILE_NAME) in client.get(pages[name]).content.decode(), name

    status = client.get(reverse("ingestion:status", args=[tenant.slug]) + f"?ids={asset.id}")
    assert status["Content-Type"] == "application/json"
    assert status.json()["images"][0]["filename"] == HOSTILE_NAME
    listing = api(alice, tenant).get(API_IMAGES)
    assert listing["Content-Type"] == "application/json"
    [row] = listing.json()["results"]
    assert (row["filename"], row["category"], row["source"]) == (HOSTILE_NAME, payload, payload)
    assert row["tags"] == [payload.lower()]
