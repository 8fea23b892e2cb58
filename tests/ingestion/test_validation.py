from __future__ import annotations

import io

import pytest
from PIL import Image

from ingestion.validation import ImageRejected, validate_image
from tests.factories import image_bytes, png_with_declared_size


def check(data: bytes):
    return validate_image(io.BytesIO(data), byte_size=len(data))


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP"), ("GIF", "GIF")],
)
def test_allowed_formats_are_accepted_by_content(fmt, expected):
    result = check(image_bytes(fmt))
    assert result.image_format == expected
    assert (result.width, result.height) == (64, 48)
    assert len(result.sha256) == 64


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"<html><body>hello</body></html>", "HTML page"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"%PDF-1.7 ...", "PDF"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "Photoshop"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "PostScript"),
        (b"SIMPLE  =                    T" + b" " * 50, "FITS"),
        (image_bytes("BMP"), "BMP"),
        (image_bytes("TIFF"), "TIFF"),
    ],
)
def test_other_content_is_refused_with_what_it_is(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        check(data)


def test_truncated_jpeg_is_refused():
    data = image_bytes("JPEG", size=(256, 256))
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        check(data[: len(data) // 2])


def test_png_signature_followed_by_garbage_is_refused():
    with pytest.raises(ImageRejected, match="cannot be decoded"):
        check(b"\x89PNG\r\n\x1a\n" + b"<script>alert(1)</script>" * 10)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_with_declared_size(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(ImageRejected, match="megapixels"):
        check(bomb)


def test_pixel_limit_is_a_setting(settings):
    settings.UPLOAD_MAX_PIXELS = 1000
    with pytest.raises(ImageRejected, match="the limit is 1000 pixels"):
        check(image_bytes("PNG"))


def test_size_limit_is_checked_from_the_declared_size_before_reading(settings):
    settings.UPLOAD_MAX_BYTES = 2048

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the file was read")

    with pytest.raises(ImageRejected, match=r"the limit is 2\.0"):
        validate_image(Unreadable(), byte_size=10_000)


def test_dimensions_are_reported_upright_for_exif_rotated_photos():
    exif = Image.Exif()
    exif[0x0112] = 8
    data = image_bytes("JPEG", size=(60, 20), exif=exif)
    result = check(data)
    assert (result.width, result.height) == (20, 60)
