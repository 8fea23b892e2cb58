"""The library page: every image of a tenant as a grid, filtered by the search's filters and a
status, sorted, with counts, a page at a time by keyset (images uploaded meanwhile neither repeat
nor skip anything)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from ingestion import views
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.upload import assets_upload
from tests.conftest import login
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def add(tenant, user, n: int, *, size: int = 64, **metadata) -> ImageAsset:
    file = SimpleUploadedFile(f"img-{n:03d}.png", image_bytes(size=(size, 48), color=(n, 100, 200)))
    [outcome] = assets_upload(tenant=tenant, uploaded_by=user, files=[file], **metadata)
    assert outcome.asset is not None, outcome.error
    return outcome.asset


def ids_on(response) -> list[str]:
    return re.findall(r'class="tile" data-asset-id="([0-9a-f-]+)"', response.content.decode())


def library(client, **params):
    return client.get(reverse("ingestion:library", args=["acme"]), params)


@pytest.fixture
def images(acme, bob):
    made = [add(acme, bob, n, size=64 + n, tags=["even"] if n % 2 == 0 else ["odd"]) for n in range(6)]
    for i, image in enumerate(made):  # distinct upload times, oldest first
        ImageAsset.objects.filter(id=image.id).update(created_at=timezone.now() - timedelta(minutes=60 - i))
    return [ImageAsset.objects.get(id=image.id) for image in made]


def test_every_image_is_on_the_grid_newest_first_with_counts(acme, bob, images):
    page = library(login(bob))
    assert page.status_code == 200
    assert ids_on(page) == [str(i.id) for i in reversed(images)]
    html = page.content.decode()
    assert "<strong>6</strong> images match, of 6 in Acme" in html
    assert re.search(r'data-status="ready">Ready 6<', html)


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("oldest", lambda images: images),
        ("name", lambda images: sorted(images, key=lambda i: i.original_filename)),
        ("name_desc", lambda images: sorted(images, key=lambda i: i.original_filename, reverse=True)),
        ("largest", lambda images: sorted(images, key=lambda i: (i.byte_size, i.id), reverse=True)),
        ("smallest", lambda images: sorted(images, key=lambda i: (i.byte_size, i.id))),
    ],
)
def test_the_grid_sorts_by_date_name_and_size(acme, bob, images, sort, order):
    assert ids_on(library(login(bob), sort=sort)) == [str(i.id) for i in order(images)]


def test_the_grid_filters_with_the_search_filters_and_a_status(acme, bob, images):
    client = login(bob)
    ImageAsset.objects.filter(id=images[0].id).update(status=AssetStatus.FAILED, failure_reason="broken")
    evens = library(client, tags="even")
    assert set(ids_on(evens)) == {str(i.id) for i in images[0::2]}
    assert "<strong>3</strong> images match" in evens.content.decode()
    assert re.search(r'data-status="failed">Failed 1<', evens.content.decode())
    assert ids_on(library(client, tags="even", status="failed")) == [str(images[0].id)]
    assert ids_on(library(client, uploaded_from=(timezone.now() + timedelta(days=1)).date().isoformat())) == []
    refused = library(client, uploaded_from="2024-02-01", uploaded_to="2024-01-01")
    assert refused.status_code == 400 and "The end date is before the start date." in refused.content.decode()


def test_keyset_pages_neither_repeat_nor_skip_while_images_are_uploaded(acme, bob, images, monkeypatch):
    monkeypatch.setattr(views, "LIBRARY_PAGE_SIZE", 4)
    client = login(bob)
    first = library(client)
    assert ids_on(first) == [str(i.id) for i in reversed(images)][:4]
    next_cursor = re.search(r'after=([\w-]+)" id="next-page"', first.content.decode())[1]
    newer = [add(acme, bob, 100 + n) for n in range(3)]  # uploaded while the first page is read
    second = library(client, after=next_cursor)
    assert ids_on(second) == [str(images[1].id), str(images[0].id)]
    assert 'id="next-page"' not in second.content.decode()
    before = re.search(r'before=([\w-]+)" id="previous-page"', second.content.decode())[1]
    back = library(client, before=before)
    assert ids_on(back) == [str(i.id) for i in reversed(images)][:4]
    assert ids_on(library(client))[:3] == [str(i.id) for i in reversed(newer)]


def test_keyset_pages_work_in_every_order_and_a_damaged_cursor_is_a_400(acme, bob, images, monkeypatch):
    monkeypatch.setattr(views, "LIBRARY_PAGE_SIZE", 4)
    client = login(bob)
    for sort in ("name", "largest", "oldest"):
        first = library(client, sort=sort)
        cursor = re.search(r'after=([\w-]+)" id="next-page"', first.content.decode())[1]
        seen = ids_on(first) + ids_on(library(client, sort=sort, after=cursor))
        assert sorted(seen) == sorted(str(i.id) for i in images) and len(seen) == 6
    assert library(client, after="not-a-cursor").status_code == 400


def test_viewers_see_the_grid_without_selection_and_cannot_act(acme, vera, images):
    client = login(vera)
    html = library(client).content.decode()
    assert len(ids_on(library(client))) == 6 and 'name="ids"' not in html
    refused = client.post(
        reverse("ingestion:bulk-action", args=["acme"]),
        {"action": "delete", "scope": "selected", "ids": [str(images[0].id)], "key": "k"},
    )
    assert refused.status_code == 403
    assert ImageAsset.objects.count() == 6


def test_another_tenants_library_is_a_404(acme, globex, charlie, images):
    assert library(login(charlie)).status_code == 404
