"""Every text a user typed (tenant name, category, source, tags, token name, file name) is shown
escaped on every page and returned as data in JSON."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from ingestion.models import AssetStatus, ImageAsset
from tenants.services import tenant_create
from tests.conftest import api, login
from tests.factories import image_bytes
from tests.ingestion.uploads import API_IMAGES, as_upload, upload_url

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
        "dashboard": reverse("ingestion:dashboard", args=[tenant.slug]),
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
