"""Decoding pictures the way a person sees them: upright, in colour, without transparency.

Chroma's `ImageLoader` does `np.array(Image.open(path))`: a palette PNG becomes its index
plane (colour lost), a CMYK JPEG four channels, EXIF rotation is ignored. Here every image
becomes an upright 8-bit RGB picture before it is embedded or thumbnailed.
"""

from __future__ import annotations

import io
import math
from typing import IO

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

# Signatures of the allowed formats, checked on the bytes themselves, never on the name.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
)

ALLOWED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
}

WHITE = (255, 255, 255)


def sniff_format(head: bytes) -> str | None:
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, offset, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return name
    return None


def open_image(source: str | IO[bytes], *, formats: list[str] | None = None) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = settings.UPLOAD_MAX_PIXELS
    return Image.open(source, formats=formats or list(ALLOWED_FORMATS))


def to_upright_rgb(image: Image.Image) -> Image.Image:
    """Applies EXIF orientation, then flattens palette, alpha, CMYK and 16-bit images to 8-bit RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        # convert("L") would clip 16-bit values at 255; scale the full range down instead.
        pixels = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((pixels >> 8).clip(0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def load_rgb(source: str | IO[bytes], *, min_side: int | None = None) -> Image.Image:
    """Decodes to upright RGB. With `min_side`, a large JPEG is decoded at a reduced scale (libjpeg's
    DCT scaling: 1/2, 1/4, 1/8) that keeps its shorter side at least `min_side` pixels, which is many
    times faster than decoding every pixel of a 12-megapixel photo only to shrink it to 224."""
    with open_image(source) as image:
        if min_side and image.format == "JPEG":
            width, height = image.size
            scale = min_side / min(width, height)
            if scale <= 0.5:
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()
        return to_upright_rgb(image)


def make_thumbnail(rgb: Image.Image, *, size: int | None = None) -> bytes:
    """A JPEG no larger than size x size. It is made from pixels alone, so it carries no EXIF."""
    edge = size or settings.THUMBNAIL_SIZE
    thumbnail = rgb.copy()
    thumbnail.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85, optimize=True, progressive=True)
    return buffer.getvalue()


_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_ORIENTATION = 0x0112


def jpeg_without_metadata(data: bytes) -> bytes:
    """The same JPEG with its EXIF and XMP segments removed (location, camera, times), except the
    orientation, which is kept in a minimal EXIF so viewers still show the photo upright. Lossless:
    the compressed image data is copied as it is."""
    if not data.startswith(b"\xff\xd8"):
        return data
    parts, pos = [b"\xff\xd8"], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return data  # not a structure we understand: leave the file alone
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            parts.append(data[pos:])
            return b"".join(parts)
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            parts.append(data[pos : pos + 2])
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos : pos + 2 + length]
        pos += 2 + length
        payload = segment[4:]
        if marker == 0xE1 and payload.startswith(_EXIF_HEADER):
            exif = Image.Exif()
            exif.load(payload)
            orientation = exif.get(_ORIENTATION)
            if orientation and orientation != 1:
                kept = Image.Exif()
                kept[_ORIENTATION] = orientation
                body = kept.tobytes()
                parts.append(b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body)
            continue
        if marker == 0xE1 and payload.startswith(_XMP_HEADER):
            continue
        parts.append(segment)
    return data
