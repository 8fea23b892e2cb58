"""A downloaded original carries the name it was uploaded with, in the page and in the API, encoded
so that any name (non-ASCII, quotes, semicolons) arrives intact and adds no header parameters."""

from __future__ import annotations

from email.message import Message

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ingestion.services.upload import assets_upload
from tests.conftest import api, login
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = [
    "Strandkörbe am Meer – Ærø 写真.png",
    'holiday "best"; filename=evil.exe.png',
    "back\\slash, comma; and 'quotes'.png",
    "plain.png",
]


def disposition(response) -> Message:
    """The Content-Disposition header parsed as a mail client (or browser) reads it, RFC 2231 included."""
    message = Message()
    message["Content-Disposition"] = response["Content-Disposition"]
    return message


@pytest.mark.parametrize("name", NAMES)
def test_the_original_downloads_under_its_own_name_from_the_page_and_the_api(acme, bob, name):
    [outcome] = assets_upload(
        tenant=acme, uploaded_by=bob, files=[SimpleUploadedFile(name, image_bytes("PNG", color=(9, 99, 199)))]
    )
    image = outcome.asset
    assert image.original_filename == name.replace("\\", "/").rsplit("/", 1)[-1]
    page = login(bob).get(reverse("ingestion:original", args=["acme", image.id]))
    from_api = api(bob, acme).get(f"/api/v1/images/{image.id}/file/")
    for response in (page, from_api):
        assert response.status_code == 200
        header = disposition(response)
        assert header.get_content_disposition() == "inline"  # the browser still shows it; saving uses the name
        assert header.get_filename() == image.original_filename
        assert [key for key, _ in header.get_params(header="Content-Disposition")][1:] in (["filename"], ["filename*"])
        assert response["Content-Disposition"].isascii()


def test_thumbnails_are_not_named_after_the_original(acme, bob):
    [outcome] = assets_upload(tenant=acme, uploaded_by=bob, files=[SimpleUploadedFile(NAMES[0], image_bytes("PNG"))])
    thumbnail = login(bob).get(reverse("ingestion:thumbnail", args=["acme", outcome.asset.id]))
    assert thumbnail.status_code == 200
    assert "Strandk" not in thumbnail.get("Content-Disposition", "")
