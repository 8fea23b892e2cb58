"""Near-duplicates: recorded when an image becomes ready (one index query per image, a batch's in one
request), grouped on the duplicates page largest first with keep-one/delete-the-others, and listed
by the API."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from ingestion.models import ImageAsset, NearDuplicate
from ingestion.services.upload import assets_upload
from tests.conftest import api, login
from tests.search.conftest import upload_sample
from tests.testenv import SAMPLES
from vectors import index

pytestmark = pytest.mark.django_db(transaction=True)


def copy_of(name: str, *, scale: float = 0.5, quality: int = 70, crop: float = 1.0) -> bytes:
    """A re-encoded, resized (and optionally cropped) copy of a sample picture."""
    image = Image.open(SAMPLES / name).convert("RGB")
    w, h = round(image.width * crop), round(image.height * crop)
    image = image.crop(
        ((image.width - w) // 2, (image.height - h) // 2, (image.width + w) // 2, (image.height + h) // 2)
    )
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def upload(tenant, user, name: str, data: bytes) -> ImageAsset:
    [outcome] = assets_upload(tenant=tenant, uploaded_by=user, files=[SimpleUploadedFile(name, data)])
    assert outcome.error is None and outcome.asset is not None, outcome.error
    return outcome.asset


def group_ids(client, asset) -> set[str]:
    response = client.get(f"/api/v1/images/{asset.id}/duplicates/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["results"])
    return {row["id"] for row in body["results"]}


def test_a_resized_reencoded_copy_is_recorded_both_ways_and_an_unrelated_picture_is_not(acme, bob):
    dog = upload_sample(acme, bob, "dog.jpg")
    cat = upload_sample(acme, bob, "cat.png")
    copy = upload(acme, bob, "dog-small.jpg", copy_of("dog.jpg", crop=0.9))
    pairs = set(NearDuplicate.objects.values_list("image_id", "duplicate_id"))
    assert pairs == {(dog.id, copy.id), (copy.id, dog.id)}
    client = api(bob, acme)
    assert group_ids(client, copy) == group_ids(client, dog) == {str(dog.id), str(copy.id)}
    assert group_ids(client, cat) == {str(cat.id)}


def test_exact_duplicates_stay_recognised_at_upload_and_are_not_near_duplicates(acme, bob):
    first = upload_sample(acme, bob, "dog.jpg")
    again = upload_sample(acme, bob, "dog.jpg")
    assert again.id == first.id and ImageAsset.objects.count() == 1
    assert not NearDuplicate.objects.exists()


def test_recording_costs_one_index_request_per_batch_and_one_query_per_image(acme, bob, monkeypatch):
    calls: list[int] = []
    real = index.query_vectors_many

    def counted(**kwargs: Any) -> list[list[index.Hit]]:
        calls.append(len(kwargs["embeddings"]))
        return real(**kwargs)

    monkeypatch.setattr(index, "query_vectors_many", counted)
    files = [
        SimpleUploadedFile("a.jpg", copy_of("dog.jpg")),
        SimpleUploadedFile("b.png", (SAMPLES / "cat.png").read_bytes()),
    ]
    outcomes = assets_upload(tenant=acme, uploaded_by=bob, files=files)
    assert all(o.error is None for o in outcomes)
    assert calls == [2]  # the batch's two images, asked in one request


@pytest.fixture
def groups(acme, bob):
    dog = upload_sample(acme, bob, "dog.jpg")
    dog_copies = [upload(acme, bob, f"dog-{q}.jpg", copy_of("dog.jpg", quality=q)) for q in (60, 80)]
    cat = upload_sample(acme, bob, "cat.png")
    cat_copy = upload(acme, bob, "cat-small.jpg", copy_of("cat.png", quality=85))
    return [dog, *dog_copies], [cat, cat_copy]


def test_the_page_shows_groups_largest_first_and_keep_one_deletes_the_others(groups, acme, bob):
    dogs, cats = groups
    client = login(bob)
    page = client.get(reverse("search:duplicates", args=[acme.slug]))
    assert page.status_code == 200
    assert [[a.id for a in g] for g in page.context["groups"]] == [[a.id for a in dogs], [a.id for a in cats]]
    assert page.content.decode().count('data-testid="duplicate-group"') == 2
    kept = dogs[1]
    done = client.post(reverse("search:duplicates-keep", args=[acme.slug]), {"keep": str(kept.id)})
    assert done.status_code == 302
    assert set(ImageAsset.objects.values_list("id", flat=True)) == {kept.id, *(c.id for c in cats)}
    assert index.fetch_vectors(tenant=acme, ids=[str(dogs[0].id), str(dogs[2].id)]) == {}
    after = client.get(reverse("search:duplicates", args=[acme.slug]))
    assert [[a.id for a in g] for g in after.context["groups"]] == [[a.id for a in cats]]


def test_viewers_see_groups_but_may_not_delete_and_other_tenants_get_404(groups, acme, vera, globex, charlie):
    dogs, _ = groups
    keep = reverse("search:duplicates-keep", args=[acme.slug])
    viewer = login(vera)
    assert viewer.get(reverse("search:duplicates", args=[acme.slug])).status_code == 200
    assert "Keep this" not in viewer.get(reverse("search:duplicates", args=[acme.slug])).content.decode()
    assert viewer.post(keep, {"keep": str(dogs[0].id)}).status_code == 403
    outsider = login(charlie)
    assert outsider.get(reverse("search:duplicates", args=[acme.slug])).status_code == 404
    own = reverse("search:duplicates-keep", args=[globex.slug])
    theirs = outsider.post(own, {"keep": str(dogs[0].id)})
    missing = outsider.post(own, {"keep": "00000000-0000-0000-0000-000000000000"})
    assert theirs.status_code == missing.status_code == 404
    assert outsider.get(reverse("search:duplicates", args=[globex.slug])).context["groups"] == []
    assert ImageAsset.objects.count() == 5
    client = api(charlie, globex)
    assert (
        client.get(f"/api/v1/images/{dogs[0].id}/duplicates/").json()
        == client.get("/api/v1/images/00000000-0000-0000-0000-000000000000/duplicates/").json()
    )
