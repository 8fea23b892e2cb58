from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import login
from tests.factories import image_bytes
from vectors import index

# Real commits, so uploads are queued after commit exactly as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def upload_url(tenant) -> str:
    return reverse("ingestion:upload", args=[tenant.slug])


def png(name: str, color=(10, 20, 30)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, image_bytes("PNG", color=color), content_type="image/png")


def test_member_uploads_samples_and_they_become_searchable_vectors(acme, bob, sample):
    response = login(bob).post(
        upload_url(acme),
        {
            "images": [sample("dog.jpg"), sample("cat.png")],
            "category": "pets",
            "source": "cookbook",
            "tags": "Animal, cute",
        },
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    results = response.json()["results"]
    assert [r["error"] for r in results] == [None, None]
    assets = ImageAsset.objects.for_tenant(acme)
    assert assets.count() == 2
    assert set(assets.values_list("status", flat=True)) == {AssetStatus.READY}
    metadata = index.fetch_metadata(tenant=acme, ids=[str(a.id) for a in assets])
    assert len(metadata) == 2
    for meta in metadata.values():
        assert meta["tenant"] == acme.vector_key
        assert (meta["category"], meta["source"]) == ("pets", "cookbook")
        assert meta["tag:animal"] is True and meta["tag:cute"] is True
        assert isinstance(meta["uploaded_at"], int)


def test_files_are_stored_under_names_the_service_makes(acme, bob, media_files):
    login(bob).post(upload_url(acme), {"images": [png("../../etc/passwd.png")]})
    asset = ImageAsset.objects.for_tenant(acme).get()
    assert asset.original_filename == "passwd.png"
    assert asset.file.name == f"tenants/{acme.vector_uuid}/originals/{asset.id}.png"
    assert asset.thumbnail.name == f"tenants/{acme.vector_uuid}/thumbnails/{asset.id}.jpg"
    assert asset.derivative_name(224) == f"tenants/{acme.vector_uuid}/derivatives/224/{asset.id}.png"
    assert len(media_files()) == 3  # the original, its thumbnail and the model's derivative


def test_a_refused_file_stores_nothing_and_the_others_go_through(acme, bob, media_files):
    response = login(bob).post(
        upload_url(acme),
        {"images": [SimpleUploadedFile("notes.png", b"<html>hi</html>"), png("good.png")]},
        HTTP_ACCEPT="application/json",
    )
    results = response.json()["results"]
    assert results[0]["filename"] == "notes.png"
    assert "HTML page" in results[0]["error"]
    assert results[1]["image"]["status"] == "ready"
    assert ImageAsset.objects.count() == 1
    assert len(media_files()) == 3  # the good file's original, thumbnail and derivative only


def test_refusals_are_shown_on_the_page_without_javascript(acme, bob):
    response = login(bob).post(upload_url(acme), {"images": [SimpleUploadedFile("empty.jpg", b"")]}, follow=True)
    assert "empty.jpg: refused. The file is empty." in response.content.decode()
    assert ImageAsset.objects.count() == 0


def test_the_same_bytes_twice_are_recognised_not_embedded_again(acme, bob, sample):
    client = login(bob)
    client.post(upload_url(acme), {"images": [sample("dog.jpg")]})
    first = ImageAsset.objects.get()
    response = client.post(upload_url(acme), {"images": [sample("dog.jpg")]}, HTTP_ACCEPT="application/json")
    [result] = response.json()["results"]
    assert result["duplicate"] is True
    assert result["image"]["id"] == str(first.id)
    assert ImageAsset.objects.count() == 1
    assert index.count_vectors(tenant=acme) == 1


def test_the_same_bytes_in_two_tenants_are_two_images(acme, globex, bob, charlie, sample):
    login(bob).post(upload_url(acme), {"images": [sample("dog.jpg")]})
    login(charlie).post(upload_url(globex), {"images": [sample("dog.jpg")]})
    assert ImageAsset.objects.for_tenant(acme).count() == 1
    assert ImageAsset.objects.for_tenant(globex).count() == 1
    assert index.count_vectors(tenant=acme) == 1
    assert index.count_vectors(tenant=globex) == 1


def test_uploads_beyond_the_quota_are_refused_with_a_message(acme, bob, media_files):
    acme.storage_quota_bytes = len(image_bytes("PNG", color=(1, 2, 3))) + 10
    acme.save()
    response = login(bob).post(
        upload_url(acme), {"images": [png("a.png", (1, 2, 3)), png("b.png", (4, 5, 6))]}, HTTP_ACCEPT="application/json"
    )
    first, second = response.json()["results"]
    assert first["error"] is None
    assert second["error"].startswith("Storage quota exceeded")
    assert ImageAsset.objects.count() == 1
    assert len(media_files()) == 3


def test_viewers_may_not_upload(acme, vera):
    response = login(vera).post(upload_url(acme), {"images": [png("a.png")]})
    assert response.status_code == 403
    assert ImageAsset.objects.count() == 0


@pytest.mark.parametrize("name", ["ingestion:upload", "ingestion:dashboard", "ingestion:status"])
def test_another_tenants_member_gets_404(acme, globex, charlie, name):
    assert login(charlie).get(reverse(name, args=[acme.slug])).status_code == 404


def test_another_tenants_member_cannot_fetch_image_files(acme, globex, bob, charlie, sample):
    login(bob).post(upload_url(acme), {"images": [sample("dog.jpg")]})
    asset = ImageAsset.objects.get()
    for name in ("ingestion:thumbnail", "ingestion:original"):
        assert login(bob).get(reverse(name, args=[acme.slug, asset.id])).status_code == 200
        assert login(charlie).get(reverse(name, args=[acme.slug, asset.id])).status_code == 404
        assert login(charlie).get(reverse(name, args=[globex.slug, asset.id])).status_code == 404


def test_anonymous_users_are_sent_to_log_in(acme, client):
    response = client.get(upload_url(acme))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_status_endpoint_reports_only_this_tenants_images(acme, globex, bob, charlie, sample):
    login(bob).post(upload_url(acme), {"images": [sample("dog.jpg")]})
    asset = ImageAsset.objects.get()
    url = reverse("ingestion:status", args=[acme.slug]) + f"?ids={asset.id},not-a-uuid"
    [image] = login(bob).get(url).json()["images"]
    assert (image["id"], image["status"]) == (str(asset.id), "ready")
    leaked = login(charlie).get(reverse("ingestion:status", args=[globex.slug]) + f"?ids={asset.id}")
    assert leaked.json() == {"images": []}


def test_thumbnails_are_upright_and_carry_no_exif(acme, bob):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS
    data = image_bytes("JPEG", size=(80, 40), exif=exif)
    login(bob).post(upload_url(acme), {"images": [SimpleUploadedFile("rotated.jpg", data)]})
    asset = ImageAsset.objects.get()
    response = login(bob).get(reverse("ingestion:thumbnail", args=[acme.slug, asset.id]))
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    thumbnail = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert thumbnail.size == (40, 80)
    assert not thumbnail.getexif()


def test_a_file_over_the_limit_is_refused_while_it_arrives_and_the_others_go_through(acme, bob, settings, media_files):
    from ingestion.uploadhandlers import early_refusals

    settings.UPLOAD_MAX_BYTES = 256 * 1024
    big = SimpleUploadedFile("huge.jpg", b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024))
    client = login(bob)
    response = client.post(upload_url(acme), {"images": [big, png("small.png")]}, HTTP_ACCEPT="application/json")
    results = {r["filename"]: r for r in response.json()["results"]}
    assert results["huge.jpg"]["error"].replace("\xa0", " ") == "The file is larger than the limit of 256.0 KB."
    assert results["small.png"]["error"] is None
    assert ImageAsset.objects.count() == 1 and len(media_files()) == 3
    [refusal] = early_refusals(response.wsgi_request)
    assert refusal.bytes_read < 1024 * 1024  # stopped early: the other 2 MB were never kept


def test_the_api_refuses_an_oversized_file_with_the_limit(acme, bob, settings):
    from rest_framework.test import APIClient

    from tenants.tokens import api_token_create

    settings.UPLOAD_MAX_BYTES = 64 * 1024
    _, key = api_token_create(tenant=acme, user=bob, name="x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    big = SimpleUploadedFile("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (512 * 1024))
    response = client.post("/api/v1/images/", {"file": big}, format="multipart")
    assert response.status_code == 400
    assert "larger than the limit of 64.0 KB" in response.json()["file"][0].replace("\xa0", " ")
    assert ImageAsset.objects.count() == 0


def test_served_jpegs_keep_their_pixels_and_orientation_but_no_location(acme, bob):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    data = image_bytes("JPEG", size=(80, 40), exif=exif)
    assert 0x8825 in Image.open(io.BytesIO(data)).getexif()
    login(bob).post(upload_url(acme), {"images": [SimpleUploadedFile("trip.jpg", data)]})
    asset = ImageAsset.objects.get()
    response = login(bob).get(reverse("ingestion:original", args=[acme.slug, asset.id]))
    served = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    tags = served.getexif()
    assert 0x8825 not in tags and 0x010F not in tags
    assert tags[0x0112] == 6
    assert served.tobytes() == Image.open(io.BytesIO(data)).tobytes()


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\x\\evil.png", "evil.png"),
        ("nul\x00byte.png", "nulbyte.png"),
        ("é" * 300 + ".png", "é" * 251 + ".png"),
        ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
    ],
)
def test_client_filenames_are_only_shown_never_used_as_paths(acme, bob, media_files, sent, shown):
    response = login(bob).post(upload_url(acme), {"images": [png(sent)]}, HTTP_ACCEPT="application/json")
    [result] = response.json()["results"]
    asset = ImageAsset.objects.get(id=result["image"]["id"])
    assert asset.original_filename == shown
    assert {p.name for p in media_files()} == {f"{asset.id}.jpg", f"{asset.id}.png"}
    page = login(bob).get(reverse("search:detail", args=[acme.slug, asset.id])).content.decode()
    assert "<img src=x onerror" not in page
