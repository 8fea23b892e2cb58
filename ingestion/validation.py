"""Checks a file before anything of it is stored.

In order, each refusal with a reason a person understands: size (before the file is read
whole), the format told by the content (JPEG, PNG, WebP, GIF; never by the name), the pixel
count (before decoding, which stops decompression bombs), then a full decode.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image

from ingestion.imaging import ALLOWED_FORMATS, open_image, sniff_format, to_upright_rgb

ALLOWED_FORMAT_NAMES = "JPEG, PNG, WebP or GIF"


class ImageRejected(ValidationError):
    pass


@dataclass
class ValidatedImage:
    image_format: str
    extension: str
    content_type: str
    width: int
    height: int
    byte_size: int
    sha256: str
    upright_rgb: Image.Image


def _describe_unknown(head: bytes) -> str:
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<svg", b"<?xml")):
        return "an SVG or XML document"
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"8BPS"):
        return "a Photoshop (PSD) file"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "a PostScript (EPS) file"
    if head.startswith(b"SIMPLE  ="):
        return "a FITS file"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    if head.startswith(b"BM"):
        return "a BMP image"
    return "not an image this service can read"


def _pixels(count: int) -> str:
    return f"{count / 1e6:.0f} megapixels" if count >= 1_000_000 else f"{count} pixels"


def sha256_of(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in iter(lambda: file.read(1 << 20), b""):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def validate_image(file: IO[bytes], *, byte_size: int) -> ValidatedImage:
    if byte_size == 0:
        raise ImageRejected("The file is empty.", code="empty")
    if byte_size > settings.UPLOAD_MAX_BYTES:
        raise ImageRejected(
            f"The file is {filesizeformat(byte_size)}; the limit is {filesizeformat(settings.UPLOAD_MAX_BYTES)}.",
            code="too_large",
        )
    file.seek(0)
    head = file.read(64)
    image_format = sniff_format(head)
    if image_format is None:
        raise ImageRejected(
            f"Unsupported file type: the content is {_describe_unknown(head)}. Upload a {ALLOWED_FORMAT_NAMES} image.",
            code="format",
        )
    file.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = open_image(file, formats=[image_format])
            width, height = image.size
            if width * height > settings.UPLOAD_MAX_PIXELS:
                raise ImageRejected(
                    f"The image is {width}×{height} pixels ({_pixels(width * height)}); "
                    f"the limit is {_pixels(settings.UPLOAD_MAX_PIXELS)}.",
                    code="too_many_pixels",
                )
            image.load()
            upright = to_upright_rgb(image)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        amount = _pixels(int(declared.group(1))) if declared else "too many pixels"
        raise ImageRejected(
            f"The image declares {amount}; the limit is {_pixels(settings.UPLOAD_MAX_PIXELS)}.",
            code="too_many_pixels",
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(
            f"The file looks like {image_format} but cannot be decoded: it is truncated or corrupt ({exc}).",
            code="corrupt",
        ) from exc
    extension, content_type = ALLOWED_FORMATS[image_format]
    return ValidatedImage(
        image_format=image_format,
        extension=extension,
        content_type=content_type,
        width=upright.width,
        height=upright.height,
        byte_size=byte_size,
        sha256=sha256_of(file),
        upright_rgb=upright,
    )
