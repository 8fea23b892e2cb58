"""How the upload tests send a file through each door and read back what is served."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

API_IMAGES = "/api/v1/images/"


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def upload_url(tenant) -> str:
    return reverse("ingestion:upload", args=[tenant.slug])


def as_upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")
