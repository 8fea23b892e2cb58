"""Forms carry CSRF protection: every state-changing page refuses a POST without the token and
changes nothing, every rendered POST form carries the token; list pages and result limits are capped."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ingestion.models import AssetStatus, BulkAction, ImageAsset
from tenants.models import ApiToken
from tenants.tokens import api_token_create
from tests.factories import image_bytes
from tests.search.conftest import upload_sample
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def image(acme, bob):
    return upload_sample(acme, bob, "dog.jpg")


@pytest.fixture
def strict(bob) -> Client:
    """A logged-in browser whose POSTs are checked for CSRF as in production."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    return client


def test_every_state_changing_page_refuses_a_post_without_the_csrf_token(strict, acme, bob, image):
    token, _ = api_token_create(tenant=acme, user=bob, name="integration")
    webhook = endpoint_create(tenant=acme, created_by=bob, url="https://hooks.acme.invalid/", events=["image.ready"])
    posts = {
        reverse("ingestion:upload", args=[acme.slug]): {"images": SimpleUploadedFile("x.png", image_bytes())},
        reverse("search:delete", args=[acme.slug, image.id]): {},
        reverse("tenants:tokens", args=[acme.slug]): {"name": "another"},
        reverse("tenants:token-revoke", args=[acme.slug, token.pk]): {},
        reverse("search:edit", args=[acme.slug, image.id]): {"tags": "changed"},
        reverse("ingestion:bulk-action", args=[acme.slug]): {"action": "delete", "ids": [str(image.id)], "key": "k"},
        reverse("webhooks:list", args=[acme.slug]): {"url": "https://x.invalid/", "events": ["image.ready"]},
        reverse("webhooks:toggle", args=[acme.slug, webhook.id]): {},
        reverse("webhooks:delete", args=[acme.slug, webhook.id]): {},
        reverse("search:search", args=[acme.slug]): {"image": SimpleUploadedFile("q.png", image_bytes())},
        reverse("search:duplicates-keep", args=[acme.slug]): {"keep": str(image.id)},
        reverse("logout"): {},
    }
    for url, data in posts.items():
        response = strict.post(url, data)
        assert response.status_code == 403, url
        assert "CSRF" in response.content.decode(), url
    assert list(ImageAsset.objects.values_list("id", flat=True)) == [image.id]
    assert list(ApiToken.objects.values_list("name", "revoked_at")) == [("integration", None)]
    assert ImageAsset.objects.get(id=image.id).tags == [] and not BulkAction.objects.exists()
    assert list(WebhookEndpoint.objects.values_list("id", "is_active")) == [(webhook.id, True)]
    assert strict.get(reverse("ingestion:dashboard", args=[acme.slug])).status_code == 200  # still logged in


def test_the_login_form_refuses_a_post_without_the_csrf_token(acme, bob):
    from tests.factories import PASSWORD

    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "bob", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_every_post_form_on_every_page_carries_the_csrf_token_and_it_works(strict, acme, image):
    pages = [
        reverse("ingestion:dashboard", args=[acme.slug]),
        reverse("ingestion:upload", args=[acme.slug]),
        reverse("ingestion:library", args=[acme.slug]),
        reverse("search:search", args=[acme.slug]),
        reverse("search:detail", args=[acme.slug, image.id]),
        reverse("tenants:tokens", args=[acme.slug]),
        reverse("search:duplicates", args=[acme.slug]),
    ]
    forms = 0
    for page in pages:
        html = strict.get(page).content.decode()
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S | re.I):
            forms += 1
            assert 'name="csrfmiddlewaretoken"' in form, (page, form[:200])
    assert forms >= len(pages)  # each page has at least one (logout is on every page)
    html = strict.get(reverse("tenants:tokens", args=[acme.slug])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    made = strict.post(
        reverse("tenants:tokens", args=[acme.slug]), {"name": "with token", "csrfmiddlewaretoken": token}
    )
    assert made.status_code == 302  # post-redirect-get
    assert ApiToken.objects.filter(tenant=acme, name="with token").exists()


def test_api_page_sizes_are_capped(acme, bob):
    ImageAsset.objects.bulk_create(
        ImageAsset(
            tenant=acme, original_filename=f"{i}.png", file=f"x/{i}.png", sha256=f"{i:064d}", image_format="PNG",
            byte_size=1, width=1, height=1, status=AssetStatus.READY,
        )
        for i in range(205)
    )  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(tenant=acme, user=bob, name='x')[1]}")
    page = client.get("/api/v1/images/?page_size=100000").json()
    assert page["count"] == 205
    assert len(page["results"]) == 200
    assert page["next"]
