"""What a person or an API client sees when something is missing, refused or broken: styled pages
in the browser, JSON `{"detail": ...}` under /api/ whether DEBUG is on or off, and never Django's
debug pages unless DJANGO_DEBUG asks for them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.template import loader
from django.urls import reverse
from rest_framework.test import APIClient

from ingestion.api import ImageViewSet
from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import api, login
from tests.factories import image_bytes
from tests.testenv import ROOT

pytestmark = pytest.mark.django_db

DEBUG_PAGE_MARKS = ("Traceback", "Using the URLconf", "DEBUG = True", "SECRET_KEY", "Request Method")


def assert_json_error(response, status: int, detail: str) -> None:
    assert response["Content-Type"] == "application/json", response.content[:300]
    assert (response.status_code, response.json()) == (status, {"detail": detail})


@pytest.mark.slow  # two Python processes
def test_debug_is_off_unless_asked():
    """`make run` (no DJANGO_ENV, no DJANGO_DEBUG) is how a user runs the product."""

    def debug_with(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in {"DJANGO_DEBUG", "DJANGO_ENV"}}
        code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
        done = subprocess.run(
            [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip().splitlines()[-1]

    assert debug_with() == "False"
    assert debug_with(DJANGO_DEBUG="1") == "True"


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize(
    "path", ["/api/v1/nope/", "/api/nope/", "/api/v1/images/not-a-uuid/similar/", "/api/v1/images/a.b/", "/api/"]
)
def test_a_path_under_the_api_that_names_no_route_is_a_json_404_in_every_mode(debug, acme, bob, path):
    assert_json_error(api(bob, acme).get(path), 404, "Not found.")
    assert_json_error(APIClient().post(path), 404, "Not found.")


def test_an_unhandled_exception_under_the_api_is_a_json_500_without_the_traceback(debug, acme, bob, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the secret inner workings")

    monkeypatch.setattr(ImageViewSet, "list", broken)
    client = api(bob, acme)
    client.raise_request_exception = False
    response = client.get("/api/v1/images/")
    assert_json_error(response, 500, "A server error occurred.")
    assert b"secret inner workings" not in response.content


def test_a_request_refused_before_any_view_is_a_json_400_under_the_api(debug, acme, bob):
    """A Host outside ALLOWED_HOSTS is refused by Django itself (with DEBUG on, as a traceback page)."""
    response = api(bob, acme).get("/api/v1/images/", HTTP_HOST="evil.example")
    assert_json_error(response, 400, "Bad request.")


def test_refusals_and_bad_input_keep_their_own_reason_in_json(debug, acme, vera):
    response = api(vera, acme).post("/api/v1/images/", {"file": image_bytes()}, format="multipart")
    assert_json_error(response, 403, "Your role in this tenant may search but not upload images.")
    response = api(vera, acme).get("/api/v1/search/", {"q": "dog", "limit": "many"})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "limit" in response.json()


@pytest.fixture
def foreign_image(globex):
    return ImageAsset.objects.create(
        tenant=globex, original_filename="globex.png", file="x/globex.png", sha256="f" * 64, image_format="PNG",
        byte_size=1, width=1, height=1, status=AssetStatus.READY,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("delete", ""), ("get", "file/"), ("get", "thumbnail/"), ("get", "similar/")],
)
def test_every_api_404_for_a_missing_or_foreign_image_says_the_same_words(acme, bob, foreign_image, method, suffix):
    client = api(bob, acme)
    for image_id in (foreign_image.id, uuid.uuid4()):
        response = getattr(client, method)(f"/api/v1/images/{image_id}/{suffix}")
        assert_json_error(response, 404, "Not found.")


def test_a_missing_page_is_the_styled_404_and_shows_no_debug_information(acme, bob):
    client = login(bob)
    for path in ("/no/such/page/", reverse("search:detail", args=["acme", uuid.uuid4()]), "/t/no-such-tenant/"):
        response = client.get(path)
        page = response.content.decode()
        assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
        assert "<h1>Not found</h1>" in page and 'class="brand"' in page and "--accent" in page
        assert not [mark for mark in DEBUG_PAGE_MARKS if mark in page]


def test_a_viewer_on_the_upload_page_gets_the_styled_403_with_the_reason(acme, vera):
    response = login(vera).get(reverse("ingestion:upload", args=["acme"]))
    page = response.content.decode()
    assert response.status_code == 403
    assert "Your role in this tenant may search but not upload images." in page
    assert 'data-testid="refusal"' in page and 'class="brand"' in page and "Log out" in page


def test_a_broken_page_is_the_styled_500(acme, bob, monkeypatch):
    monkeypatch.setattr("ingestion.views.status_counts", lambda tenant: 1 / 0)
    client = login(bob)
    client.raise_request_exception = False
    response = client.get(reverse("ingestion:dashboard", args=["acme"]))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in page and 'class="brand"' in page and "--accent" in page
    assert "ZeroDivisionError" not in page


def test_the_500_page_renders_without_a_request_or_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        page = loader.get_template("500.html").render()
    assert "Something went wrong" in page and "--accent" in page
