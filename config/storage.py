"""Where files live: the local disk (the embedded default) or an S3-compatible object store."""

from __future__ import annotations

from typing import Any


def s3_storage(
    *, bucket: str, endpoint_url: str = "", region: str = "", access_key: str = "", secret_key: str = ""
) -> dict[str, Any]:
    """django-storages' S3 backend as the service uses it: private objects, never overwritten (a
    name that exists gets a new one), read back through the storage API (or short-lived signed URLs)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
            "querystring_expire": 300,
            # Self-hosted stores (MinIO, Garage, moto) answer on one host: the bucket goes in the path.
            "addressing_style": "path" if endpoint_url else None,
        },
    }
