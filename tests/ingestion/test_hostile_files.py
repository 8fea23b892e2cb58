"""Hostile files, through every door (the upload page's form POST, the JSON answer its script asks
for, and the REST API), are refused with a reason that names the problem and store nothing, while a
good file sent beside them still goes through. A hostile file name is a label only, and shown escaped.
"""

from __future__ import annotations

import html
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape
from PIL import Image

from ingestion.models import ImageAsset
from ingestion.uploadhandlers import early_refusals
from tests.conftest import api, login
from tests.factories import image_bytes, png_chunk, png_with_declared_size
from tests.ingestion.uploads import API_IMAGES, as_upload, encode, upload_url


def plain(text: str) -> str:
    return html.unescape(text).replace("\xa0", " ")


def good_png() -> SimpleUploadedFile:
    return as_upload("good.png", image_bytes("PNG", size=(8, 8), color=(20, 140, 60)))


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
    assert len(stored) == 3 and all(path.is_relative_to(tenant_folder) for path in stored)
    assert {path.name for path in stored} == {f"{asset.id}.png", f"{asset.id}.jpg"}


@pytest.mark.django_db
def test_a_refused_file_with_a_hostile_name_is_reported_escaped(acme, bob):
    name = '"><img src=x onerror=alert(1)>.png'
    response = login(bob).post(upload_url(acme), {"images": [as_upload(name, SCRIPT)]})
    assert response.status_code == 400
    page = response.content.decode()
    assert "<img src=x onerror" not in page
    assert f"{escape(name)}: refused. Unsupported file type: the content is an HTML page." in page
