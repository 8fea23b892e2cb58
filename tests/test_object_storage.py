"""Originals, thumbnails and derivatives in an S3-compatible store (moto's server on loopback here;
AWS S3, MinIO, Garage or Ceph RGW in production): private, under the tenant's prefix, never
overwritten, served through the same tenant-checked views, read by a worker that shares no disk
with the web side, and gone with their tenant."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from config.storage import s3_storage
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.deletion import tenant_delete
from tests.conftest import api, wait_for_status, web_side, worker_env
from tests.factories import image_bytes
from tests.support.processes import CeleryWorker, RedisServer, S3Server, publishing_to
from tests.testenv import OUTPUT

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def s3_server(request) -> Iterator[S3Server]:
    server = S3Server(log=OUTPUT / "s3-server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server, settings, request) -> Iterator[object]:
    """A fresh private bucket, and this test process's default storage in it."""
    name = f"imagesearch-{abs(hash(request.node.nodeid)) % 10**8}"
    env = s3_server.settings_for(name)
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=name,
            endpoint_url=s3_server.url,
            region="us-east-1",
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
        ),
    }
    client.env = env  # type: ignore[attr-defined]
    client.name = name  # type: ignore[attr-defined]
    yield client


def keys(bucket) -> set[str]:
    listed = bucket.list_objects_v2(Bucket=bucket.name)
    return {item["Key"] for item in listed.get("Contents", [])}


def test_uploads_go_to_the_bucket_privately_under_the_tenants_prefix_and_are_served_by_the_views(
    bucket, transactional_db, acme, globex, bob, charlie
):
    client = api(bob, acme)
    response = client.post(
        "/api/v1/images/", {"file": SimpleUploadedFile("a.png", image_bytes("PNG"))}, format="multipart"
    )
    assert response.status_code == 201
    asset = ImageAsset.objects.get(id=response.json()["id"])
    assert asset.status == AssetStatus.READY  # embedded from the derivative read through the storage API
    prefix = f"tenants/{acme.vector_uuid}/"
    assert keys(bucket) == {asset.file.name, asset.thumbnail.name, asset.derivative_name(224)}
    assert all(key.startswith(prefix) for key in keys(bucket))
    grants = bucket.get_object_acl(Bucket=bucket.name, Key=asset.file.name)["Grants"]
    assert [g["Grantee"].get("URI") for g in grants if g["Grantee"]["Type"] == "Group"] == []  # nothing public
    served = client.get(f"/api/v1/images/{asset.id}/file/")
    stored = bucket.get_object(Bucket=bucket.name, Key=asset.file.name)["Body"].read()
    assert served.status_code == 200 and b"".join(served.streaming_content) == stored
    assert api(charlie, globex).get(f"/api/v1/images/{asset.id}/file/").status_code == 404


def test_a_stored_name_is_never_overwritten(bucket, db):
    first = default_storage.save("tenants/x/originals/same.png", ContentFile(b"one"))
    second = default_storage.save("tenants/x/originals/same.png", ContentFile(b"two"))
    assert first != second
    assert default_storage.open(first).read() == b"one"


def test_deleting_a_tenant_removes_its_objects_and_nothing_else(bucket, transactional_db, acme, globex, bob, charlie):
    api(bob, acme).post(
        "/api/v1/images/", {"file": SimpleUploadedFile("a.png", image_bytes("PNG"))}, format="multipart"
    )
    api(charlie, globex).post(
        "/api/v1/images/",
        {"file": SimpleUploadedFile("b.png", image_bytes("PNG", color=(1, 2, 3)))},
        format="multipart",
    )
    theirs = {key for key in keys(bucket) if key.startswith(f"tenants/{globex.vector_uuid}/")}
    assert len(theirs) == 3 and len(keys(bucket)) == 6
    tenant_delete(tenant=acme)
    assert keys(bucket) == theirs


def test_a_worker_that_shares_no_disk_with_the_web_side_embeds_from_the_bucket(
    bucket, settings, transactional_db, chroma_server, tmp_path, acme, bob
):
    broker = RedisServer(log=OUTPUT / "s3-redis.log")  # its own: no other test's worker takes the task
    broker.start()
    worker = CeleryWorker(
        env=worker_env(
            chroma_url=chroma_server.url, media=tmp_path / "worker-has-no-files", REDIS_URL=broker.url, **bucket.env
        ),
        log=OUTPUT / "s3-celery-worker.log",
        hostname="s3@%h",
    )
    try:
        with publishing_to(broker.url):
            worker.start()
            with web_side(settings, chroma_url=chroma_server.url, media=tmp_path / "web-has-no-files"):
                response = api(bob, acme).post(
                    "/api/v1/images/", {"file": SimpleUploadedFile("a.png", image_bytes("PNG"))}, format="multipart"
                )
                asset = ImageAsset.objects.get(id=response.json()["id"])
                wait_for_status(asset, {AssetStatus.READY, AssetStatus.FAILED}, timeout=120)
                assert asset.status == AssetStatus.READY, asset.failure_reason
                assert not (tmp_path / "worker-has-no-files").exists() and not (tmp_path / "web-has-no-files").exists()
    finally:
        worker.stop()
        broker.stop()
