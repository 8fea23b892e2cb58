"""Every tenant page and API route, as each kind of caller: a member, a viewer, a member of another
tenant and an anonymous visitor. Another tenant's member always gets 404, as for a missing id."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ingestion.models import ImageAsset
from ingestion.services.labels import vocabulary_set
from tenants.tokens import api_token_create
from tests.conftest import login
from tests.factories import image_bytes
from tests.search.conftest import upload_sample

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # exhaustive: every route for every role

CALLERS = ["member", "viewer", "other", "anonymous"]

# (url name, method, needs an image id, expected status for member / viewer / other / anonymous)
PAGES = [
    ("ingestion:dashboard", "get", False, (200, 200, 404, 302)),
    ("tenants:tokens", "get", False, (200, 200, 404, 302)),
    ("ingestion:upload", "get", False, (200, 403, 404, 302)),
    ("ingestion:status", "get", False, (200, 200, 404, 302)),
    ("search:search", "get", False, (200, 200, 404, 302)),
    ("ingestion:thumbnail", "get", True, (200, 200, 404, 302)),
    ("ingestion:original", "get", True, (200, 200, 404, 302)),
    ("search:detail", "get", True, (200, 200, 404, 302)),
    ("search:similar", "get", True, (200, 200, 404, 302)),
    ("search:delete", "post", True, (302, 403, 404, 302)),
    ("search:edit", "post", True, (302, 403, 404, 302)),
    ("ingestion:library", "get", False, (200, 200, 404, 302)),
    ("ingestion:bulk-action", "post", False, (400, 403, 404, 302)),
    ("webhooks:list", "get", False, (403, 403, 404, 302)),
    ("ingestion:labels", "get", False, (403, 403, 404, 302)),
    ("ingestion:labels", "post", False, (403, 403, 404, 302)),
    ("tenants:members", "get", False, (403, 403, 404, 302)),
    ("tenants:audit-log", "get", False, (403, 403, 404, 302)),
    ("tenants:invite", "post", False, (403, 403, 404, 302)),
]

# (path with {id}, method, expected status for member / viewer / other / anonymous)
ROUTES = [
    ("/api/v1/images/{id}/", "get", (200, 200, 404, 401)),
    ("/api/v1/images/{id}/similar/", "get", (200, 200, 404, 401)),
    ("/api/v1/images/{id}/file/", "get", (200, 200, 404, 401)),
    ("/api/v1/images/{id}/thumbnail/", "get", (200, 200, 404, 401)),
    ("/api/v1/images/{id}/", "delete", (204, 403, 404, 401)),
    ("/api/v1/images/", "get", (200, 200, 200, 401)),
    ("/api/v1/search/?q=dog", "get", (200, 200, 200, 401)),
    ("/api/v1/labels/", "get", (200, 200, 200, 401)),
    ("/api/v1/labels/", "put", (403, 403, 403, 401)),
]


@pytest.fixture
def image(acme, alice, bob, globex):
    vocabulary_set(tenant=acme, labels=["dog"], updated_by=alice)  # what another tenant must not read
    return upload_sample(acme, bob, "dog.jpg")


def page_client(caller, bob, vera, charlie) -> Client:
    return {
        "member": lambda: login(bob),
        "viewer": lambda: login(vera),
        "other": lambda: login(charlie),
        "anonymous": Client,
    }[caller]()


def api_client(caller, acme, globex, bob, vera, charlie) -> APIClient:
    client = APIClient()
    tokens = {"member": (acme, bob), "viewer": (acme, vera), "other": (globex, charlie)}
    if caller in tokens:
        _, key = api_token_create(tenant=tokens[caller][0], user=tokens[caller][1], name=caller)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("name", "method", "with_image", "expected"), PAGES, ids=[p[0] for p in PAGES])
def test_pages(image, acme, bob, vera, charlie, caller, name, method, with_image, expected):
    args = [acme.slug, image.id] if with_image else [acme.slug]
    response = getattr(page_client(caller, bob, vera, charlie), method)(reverse(name, args=args))
    assert response.status_code == expected[CALLERS.index(caller)]
    if caller == "anonymous":
        assert response.url.startswith(reverse("login"))
    if caller == "other" and with_image:
        assert ImageAsset.objects.filter(id=image.id).exists()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("path", "method", "expected"), ROUTES, ids=[f"{r[1]} {r[0]}" for r in ROUTES])
def test_api_routes(image, acme, globex, bob, vera, charlie, caller, path, method, expected):
    client = api_client(caller, acme, globex, bob, vera, charlie)
    response = getattr(client, method)(path.format(id=image.id))
    assert response.status_code == expected[CALLERS.index(caller)]
    if caller == "other" and response.status_code == 200:
        body = response.json()
        assert body.get("results") == [] or body.get("count") == 0 or body.get("labels") == []


@pytest.mark.parametrize("caller", CALLERS)
def test_api_upload(acme, globex, bob, vera, charlie, caller):
    client = api_client(caller, acme, globex, bob, vera, charlie)
    response = client.post("/api/v1/images/", {"file": SimpleUploadedFile("x.png", image_bytes())}, format="multipart")
    assert response.status_code == {"member": 201, "viewer": 403, "other": 201, "anonymous": 401}[caller]
    if caller == "other":
        assert ImageAsset.objects.get().tenant == globex
