"""Decoding pictures the way a person sees them: upright, in colour, without transparency.

Chroma's `ImageLoader` does `np.array(Image.open(path))`: a palette PNG becomes its index
plane (colour lost), a CMYK JPEG four channels, EXIF rotation is ignored. Here every image
becomes an upright 8-bit RGB picture before it is embedded or thumbnailed.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterator
from typing import IO

import numpy as np
from django.conf import settings
from PIL import ExifTags, Image, ImageOps

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


def make_derivative(rgb: Image.Image, *, side: int) -> bytes:
    """What the model needs of a picture, made once from the pixels the upload already decoded: the
    resize step of OpenCLIP's preprocessing (shorter side `side`, bicubic, the size computed as
    torchvision's Resize(side) computes it), stored losslessly, so the worker's own transform finds
    nothing left to resize and its vector is the one the full picture gives. The centre crop and
    the normalisation stay the model's."""
    buffer = io.BytesIO()
    resize_for_model(rgb, side=side).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def resize_for_model(rgb: Image.Image, *, side: int) -> Image.Image:
    width, height = rgb.size
    if min(width, height) == side:
        return rgb
    short, long = sorted((width, height))
    size = (side, int(side * long / short)) if width <= height else (int(side * long / short), side)
    return rgb.resize(size, Image.Resampling.BICUBIC)


def load_derivative(source: IO[bytes], *, side: int) -> Image.Image:
    """A stored derivative, refused (ValueError) unless it is one: a PNG whose shorter side is `side`."""
    with Image.open(source) as image:
        if image.format != "PNG" or min(image.size) != side:
            raise ValueError(f"not a derivative of side {side}: {image.format} {image.size}")
        image.load()
        return image.convert("RGB")


def make_thumbnail(rgb: Image.Image, *, size: int | None = None) -> bytes:
    """A JPEG no larger than size x size. It is made from pixels alone, so it carries no EXIF."""
    edge = size or settings.THUMBNAIL_SIZE
    thumbnail = rgb.copy()
    thumbnail.thumbnail((edge, edge), Image.Resampling.BICUBIC)  # a third less work than Lanczos, alike at this size
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85, optimize=True, progressive=True)
    return buffer.getvalue()


_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADERS = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
ORIENTATION = ExifTags.Base.Orientation
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Text, EXIF and time chunks: where cameras and editors put location, captions, authors and times.
_PNG_METADATA_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
_WEBP_METADATA_CHUNKS = frozenset({b"EXIF", b"XMP "})
_VP8X_EXIF_FLAG, _VP8X_XMP_FLAG = 0x08, 0x04


class BrokenStructure(ValueError):
    pass


def _orientation_exif(orientation: int) -> bytes:
    """A TIFF-structured EXIF block holding the orientation alone (no "Exif" header)."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()[len(_EXIF_HEADER) :]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk up to and including IEND; BrokenStructure if a chunk runs past
    the end of the data or IEND never comes."""
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, end = data[pos + 4 : pos + 8], pos + 12 + length
        if end > len(data):
            break
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end
    raise BrokenStructure("its chunks end before the IEND chunk")


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(FourCC, start, end) of each chunk inside the RIFF container, padding byte included."""
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise BrokenStructure("it is shorter than its RIFF header says")
    pos = 12
    while pos + 8 <= riff_end:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > riff_end:
            raise BrokenStructure("a chunk runs past the end of the RIFF container")
        yield data[pos : pos + 4], pos, min(end, riff_end)
        pos = end


def trailing_bytes(data: bytes, image_format: str) -> int:
    """How many bytes follow the end of a PNG (its IEND chunk) or a WebP (its RIFF container).
    Decoders never read them, which makes them the hiding place of a second file in polyglots.
    JPEG and GIF are not checked: data after a JPEG is common and legitimate (a second picture
    (MPF), a phone's motion photo), and GIFs in the wild often lack their trailer; a stored GIF is
    cut at its trailer instead. Raises BrokenStructure when the end cannot be found."""
    if image_format == "PNG":
        *_, (_, _, end) = _png_chunks(data)
        return len(data) - end
    if image_format == "WEBP":
        list(_riff_chunks(data))
        return len(data) - 8 - int.from_bytes(data[4:8], "little")
    return 0


def without_metadata(data: bytes, image_format: str, *, orientation: int = 1) -> bytes:
    """The file as it is stored and served: its location, camera, caption and time metadata
    (EXIF, XMP, text chunks, comments) removed, and nothing else. Lossless: every chunk or segment
    that holds pixels, palette, transparency or colour profile is copied byte for byte. An
    `orientation` other than 1 (as Pillow read it from the upload, EXIF or XMP) is kept in a
    minimal EXIF, so viewers, and the embedding worker that reads the stored file, still see
    the picture upright. A file whose structure is not understood is left as it is."""
    strip = {
        "JPEG": jpeg_without_metadata,
        "PNG": png_without_metadata,
        "WEBP": webp_without_metadata,
        "GIF": gif_without_metadata,
    }.get(image_format)
    return strip(data, orientation=orientation) if strip else data


def jpeg_without_metadata(data: bytes, *, orientation: int = 1) -> bytes:
    """Drops the EXIF and XMP segments. The compressed image data is copied as it is."""
    if not data.startswith(b"\xff\xd8"):
        return data
    parts, pos = [b"\xff\xd8"], 2
    app0_end = 1  # the orientation goes after SOI and any APP0 (JFIF) segments, where EXIF belongs
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return data  # not a structure we understand: leave the file alone
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            parts.append(data[pos:])
            if orientation != 1:
                body = _EXIF_HEADER + _orientation_exif(orientation)
                parts.insert(app0_end, b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body)
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
        if marker == 0xE1 and payload.startswith((_EXIF_HEADER, *_XMP_HEADERS)):
            continue
        parts.append(segment)
        if marker == 0xE0 and app0_end == len(parts) - 1:
            app0_end = len(parts)
    return data


def png_without_metadata(data: bytes, *, orientation: int = 1) -> bytes:
    """Drops the eXIf, text and tIME chunks and anything after IEND."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    parts = [_PNG_SIGNATURE]
    try:
        for kind, start, end in _png_chunks(data):
            if kind not in _PNG_METADATA_CHUNKS:
                parts.append(data[start:end])
            if kind == b"IHDR" and orientation != 1:
                parts.append(_png_chunk(b"eXIf", _orientation_exif(orientation)))
    except BrokenStructure:
        return data
    return b"".join(parts)


def webp_without_metadata(data: bytes, *, orientation: int = 1) -> bytes:
    """Drops the EXIF and XMP chunks, clears their flags in the VP8X header, fixes the RIFF size."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return data
    try:
        chunks = [(kind, data[start:end]) for kind, start, end in _riff_chunks(data)]
    except BrokenStructure:
        return data
    if not chunks or chunks[0][0] != b"VP8X" or len(chunks[0][1]) < 9:
        # The simple format cannot carry metadata; only what follows the container goes.
        return data[: 8 + int.from_bytes(data[4:8], "little")]
    kept = [
        chunk if len(chunk) % 2 == 0 else chunk + b"\x00"
        for kind, chunk in chunks[1:]
        if kind not in _WEBP_METADATA_CHUNKS
    ]
    flags = chunks[0][1][8] & ~(_VP8X_EXIF_FLAG | _VP8X_XMP_FLAG)
    if orientation != 1:
        exif = _orientation_exif(orientation)
        kept.append(b"EXIF" + len(exif).to_bytes(4, "little") + exif + b"\x00" * (len(exif) & 1))
        flags |= _VP8X_EXIF_FLAG
    vp8x = chunks[0][1]
    body = b"WEBP" + vp8x[:8] + bytes([flags]) + vp8x[9:] + b"".join(kept)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """The offset after the data sub-blocks starting at `pos` (each a length byte, then that many
    bytes, ending with a zero length)."""
    while True:
        if pos >= len(data):
            raise BrokenStructure("its data blocks end early")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def gif_without_metadata(data: bytes, *, orientation: int = 1) -> bytes:
    """Drops comment extensions and XMP application extensions; the frames, their palettes and
    timing are copied as they are. (GIF has no EXIF, and Pillow reads no orientation from it.)"""
    if not data.startswith((b"GIF87a", b"GIF89a")) or len(data) < 13:
        return data
    packed = data[10]
    pos = 13 + (3 << ((packed & 0x07) + 1) if packed & 0x80 else 0)
    parts = [data[:pos]]
    try:
        while pos < len(data):
            introducer = data[pos]
            if introducer == 0x3B:  # trailer
                parts.append(b";")
                return b"".join(parts)
            if introducer == 0x21 and pos + 1 < len(data):  # extension
                label = data[pos + 1]
                end = _gif_sub_blocks_end(data, pos + 2)
                is_xmp = label == 0xFF and data[pos + 2 : pos + 14] == b"\x0bXMP DataXMP"
                if label != 0xFE and not is_xmp:
                    parts.append(data[pos:end])
                pos = end
            elif introducer == 0x2C and pos + 10 <= len(data):  # image descriptor, then its data
                local = data[pos + 9]
                start_of_data = pos + 10 + (3 << ((local & 0x07) + 1) if local & 0x80 else 0) + 1
                end = _gif_sub_blocks_end(data, start_of_data)
                parts.append(data[pos:end])
                pos = end
            else:
                return data
    except BrokenStructure:
        return data
    return b"".join(parts)
