"""Checks a file before anything of it is stored.

In order, each refusal with a reason a person understands: size (before the file is read
whole), the format told by the content (JPEG, PNG, WebP, GIF; never by the name), the pixel
count (before decoding, which stops decompression bombs), a full decode, then for PNG and WebP
the container's structure: nothing may follow the image (a second file hidden in it, a polyglot).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ingestion.imaging import (
    ALLOWED_FORMATS,
    ORIENTATION,
    BrokenStructure,
    open_image,
    sniff_format,
    to_upright_rgb,
    trailing_bytes,
)

ALLOWED_FORMAT_NAMES = "JPEG, PNG, WebP or GIF"
TURNED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


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
    sha256: str  # of the bytes as uploaded, so the same file uploaded again is recognised
    upright_rgb: Image.Image
    orientation: int = 1  # EXIF (or XMP) orientation as Pillow reads it; kept in the stored copy
    data: bytes = field(default=b"", repr=False)  # the file as uploaded, read once (at most UPLOAD_MAX_BYTES)


# What a refused file really is, told by how it starts: (leading bytes, description).
_KNOWN_OTHERS: tuple[tuple[tuple[bytes, ...], str], ...] = (
    ((b"%PDF",), "a PDF document"),
    ((b"8BPS",), "a Photoshop (PSD) file"),
    ((b"%!PS", b"\xc5\xd0\xd3\xc6"), "a PostScript (EPS) file"),
    ((b"SIMPLE  =",), "a FITS file"),
    ((b"II*\x00", b"MM\x00*"), "a TIFF image"),
    ((b"BM",), "a BMP image"),
    ((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"), "a JPEG 2000 image"),
    ((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"), "a JPEG XL image"),
    ((b"\x00\x00\x01\x00",), "an icon (ICO) file"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}


def _describe_unknown(head: bytes) -> str:
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<svg", b"<?xml")):
        return "an SVG or XML document"
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "an HEIC or AVIF image (convert it to JPEG first)"
    for prefixes, description in _KNOWN_OTHERS:
        if head.startswith(prefixes):
            return description
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


def validate_image(
    file: IO[bytes], *, byte_size: int, keep_side: int | None = None, keep_edge: int | None = None
) -> ValidatedImage:
    """The file checked (see the module), and its pixels upright in RGB. With `keep_side` (and
    `keep_edge`), a large JPEG's pixels are decoded at the reduced scale (libjpeg's DCT scaling: 1/2,
    1/4, 1/8) that keeps its shorter side at least `keep_side` pixels (and its longer side at least
    `keep_edge`): every byte of the image data is still decoded (a truncated or corrupt file is still
    refused), only the inverse transforms of detail that no thumbnail or model input shows are
    skipped, several times less work on a photo. `width` and `height` are the image's own either way."""
    if byte_size == 0:
        raise ImageRejected("The file is empty.", code="empty")
    if byte_size > settings.UPLOAD_MAX_BYTES:
        raise ImageRejected(
            f"The file is {filesizeformat(byte_size)}; the limit is {filesizeformat(settings.UPLOAD_MAX_BYTES)}.",
            code="too_large",
        )
    file.seek(0)
    data = file.read()  # once: format, decode, trailing bytes, hash and the stored copy all use it
    head = data[:64]
    image_format = sniff_format(head)
    if image_format is None:
        raise ImageRejected(
            f"Unsupported file type: the content is {_describe_unknown(head)}. Upload a {ALLOWED_FORMAT_NAMES} image.",
            code="format",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = open_image(io.BytesIO(data), formats=[image_format])
            width, height = image.size
            if width * height > settings.UPLOAD_MAX_PIXELS:
                raise ImageRejected(
                    f"The image is {width}×{height} pixels ({_pixels(width * height)}); "
                    f"the limit is {_pixels(settings.UPLOAD_MAX_PIXELS)}.",
                    code="too_many_pixels",
                )
            if (keep_side or keep_edge) and image_format == "JPEG":
                scale = max((keep_side or 0) / min(width, height), (keep_edge or 0) / max(width, height))
                if scale <= 0.5:
                    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
            orientation = image.getexif().get(ORIENTATION, 1)
            upright = to_upright_rgb(image)
            if orientation in TURNED:  # the stored size is the upright picture's
                width, height = height, width
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            f"The file starts like a {image_format} image but cannot be decoded as one: "
            "the rest of it is something else (a corrupt or disguised file).",
            code="corrupt",
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        amount = _pixels(int(declared.group(1))) if declared else "too many pixels"
        raise ImageRejected(
            f"The image declares {amount}; the limit is {_pixels(settings.UPLOAD_MAX_PIXELS)}.",
            code="too_many_pixels",
        ) from exc
    except ValueError as exc:
        if "Decompressed data too large" in str(exc):
            raise ImageRejected(
                f"The image holds a compressed text or colour-profile chunk that expands to more than "
                f"{filesizeformat(PngImagePlugin.MAX_TEXT_CHUNK)}, as decompression bombs do.",
                code="bomb",
            ) from exc
        raise _undecodable(image_format, exc) from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise _undecodable(image_format, exc) from exc
    _check_nothing_follows(data, image_format)
    extension, content_type = ALLOWED_FORMATS[image_format]
    return ValidatedImage(
        image_format=image_format,
        extension=extension,
        content_type=content_type,
        width=width,
        height=height,
        byte_size=byte_size,
        sha256=hashlib.sha256(data).hexdigest(),
        upright_rgb=upright,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        data=data,
    )


def _undecodable(image_format: str, exc: Exception) -> ImageRejected:
    return ImageRejected(
        f"The file looks like {image_format} but cannot be decoded: it is truncated or corrupt ({exc}).",
        code="corrupt",
    )


def _check_nothing_follows(data: bytes, image_format: str) -> None:
    try:
        extra = trailing_bytes(data, image_format)
    except BrokenStructure as exc:
        raise _undecodable(image_format, exc) from exc
    if extra > 0:
        raise ImageRejected(
            f"The file is a {image_format} image followed by {extra} bytes of other data: an image hiding "
            "another file (a polyglot) is refused. Save the picture again and upload that.",
            code="polyglot",
        )
