from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ingestion.imaging import load_rgb


def encode(image: Image.Image, fmt: str, **save) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_become_white_not_black(mode):
    image = Image.new(mode, (4, 4), (0,) * len(mode))  # fully transparent black
    rgb = load_rgb(encode(image, "PNG"))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_keeps_opaque_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    rgb = load_rgb(encode(image, "PNG", transparency=1))
    assert [rgb.getpixel((0, 0)), rgb.getpixel((1, 0))] == [(255, 0, 0), (255, 255, 255)]


def test_cmyk_jpeg_becomes_rgb():
    rgb = load_rgb(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = rgb.getpixel((4, 4))
    assert rgb.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_grey_keeps_its_range_instead_of_clipping():
    pixels = np.array([[0, 32768, 65535]], dtype=np.uint16)
    grey = Image.fromarray(pixels)
    assert grey.mode == "I;16"
    rgb = load_rgb(encode(grey, "PNG"))
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = load_rgb(data).getpixel((1, 1))
    assert green < 60
    assert red > 200 and blue < 60
