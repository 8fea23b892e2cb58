"""A person's path through the upload page, in Debian's chromium driven by playwright, against
the full stack: statuses change from pending to ready on the page without a reload."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections

from ingestion.services.upload import assets_upload
from tenants.models import Role
from tenants.services import membership_set
from tenants.tokens import api_token_create
from tests.conftest import wait_for_status
from tests.factories import PASSWORD
from tests.search.conftest import upload_sample
from tests.testenv import OUTPUT, SAMPLES

pytestmark = [pytest.mark.browser, pytest.mark.stack]

CHROMIUM = "/usr/bin/chromium"
PHONE_WIDTH = 390


@pytest.fixture
def browser(monkeypatch) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make system-deps` installs it.")
    # playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
        # Connections opened while playwright's loop ran belong to its context: close them here.
        connections.close_all()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser) -> Iterator[object]:
    """A phone's screen: 390 CSS pixels wide, as a mobile browser lays pages out."""
    context = browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    yield context.new_page()
    context.close()


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/t/acme/")


def test_upload_wait_until_ready_then_search_by_text_and_more_like_this(page, live_server, stack, acme, bob, tmp_path):
    from playwright.sync_api import expect

    bad = tmp_path / "notes.png"
    bad.write_text("<svg></svg>")
    log_in(page, live_server, "bob")
    page.click("text=Upload")
    page.set_input_files("#id_images", [str(SAMPLES / "dog.jpg"), str(SAMPLES / "dog-with-person.jpg"), str(bad)])
    page.fill("#id_tags", "dogs, park")
    held = []  # the upload is held on its way, to see what the page says meanwhile
    page.route(
        "**/t/acme/upload/", lambda route: held.append(route) if route.request.method == "POST" else route.continue_()
    )
    page.click("#upload-button")
    expect(page.locator("#upload-button")).to_be_disabled()
    expect(page.locator("#upload-state")).to_contain_text("Sending 3 files")
    held[0].continue_()
    expect(page.locator("#upload-button")).to_be_enabled(timeout=30_000)
    expect(page.locator("#upload-state")).to_contain_text("2 stored; embedding follows in the background")
    expect(page.locator("#refused li")).to_contain_text("notes.png: refused. Unsupported file type")
    rows = page.locator("#assets tr[data-asset-id]")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i)).to_have_attribute("data-status", "ready", timeout=60_000)
        expect(rows.nth(i).locator(".status")).to_have_text("Ready")
    (OUTPUT / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "screenshots" / "upload-ready.png"), full_page=True)

    page.click("nav >> text=Search")
    page.fill("#id_q", "a photo of a dog")
    page.click("#text-search button[type=submit]")
    cards = page.locator("[data-testid=results] .result")
    expect(cards).to_have_count(2)
    expect(cards.first.locator(".score")).to_have_text(re.compile(r"^-?[01]\.\d{3}$"))
    page.screenshot(path=str(OUTPUT / "screenshots" / "search-text.png"), full_page=True)

    first_id = cards.first.get_attribute("data-asset-id")
    cards.first.locator(".more-like-this").click()
    expect(page.locator("[data-testid=similar-to]")).to_be_visible()
    expect(cards).to_have_count(1)
    assert cards.first.get_attribute("data-asset-id") != first_id
    page.screenshot(path=str(OUTPUT / "screenshots" / "more-like-this.png"), full_page=True)


LONG_NAME = "IMG_20240101_123456789_HDR_panorama_from_the_harbour_wall_edited_final_v2.jpg"


def test_every_page_fits_a_phone_and_log_out_stays_reachable(phone, live_server, stack, acme, globex, bob):
    """At 390 px no page is wider than the screen (no sideways scrolling), and the header's Log out and
    tenant switcher are on screen. Screenshots at phone and desktop width: test-output/screenshots/."""
    from playwright.sync_api import expect

    membership_set(tenant=globex, user=bob, role=Role.MEMBER)  # two tenants: the header shows the switcher
    dog = upload_sample(acme, bob, "dog.jpg", category="pets", source="a-camera-with-a-long-name", tags=["dog"])
    cat = SimpleUploadedFile(LONG_NAME, (SAMPLES / "cat.png").read_bytes())
    [long_named] = assets_upload(tenant=acme, uploaded_by=bob, files=[cat], tags=["averyveryverylongtagwithoutspaces"])
    for image in (dog, long_named.asset):
        wait_for_status(image, {"ready"})
    token, _ = api_token_create(tenant=acme, user=bob, name="a token with a rather long descriptive name")
    shots = OUTPUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)

    def check(name: str, *, account: bool = True) -> None:
        width = phone.evaluate("document.documentElement.scrollWidth")
        phone.screenshot(path=str(shots / f"phone-{name}.png"), full_page=True)
        assert width <= PHONE_WIDTH, f"{name}: the page is {width} px wide on a {PHONE_WIDTH} px screen"
        if account:
            expect(phone.get_by_role("button", name="Log out")).to_be_in_viewport()
            expect(phone.get_by_label("Switch tenant")).to_be_in_viewport()

    phone.goto(f"{live_server.url}/accounts/login/")
    check("login", account=False)
    phone.fill("#id_username", "bob")
    phone.fill("#id_password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{live_server.url}/")
    check("home")
    pages = {
        "dashboard": "/t/acme/",
        "library": "/t/acme/images/",
        "upload": "/t/acme/upload/",
        "search": "/t/acme/search/?q=a+photo+of+a+dog",
        "detail": f"/t/acme/images/{long_named.asset.id}/",
        "tokens": "/t/acme/tokens/",
        "revoke": f"/t/acme/tokens/{token.pk}/revoke/",
        "not-found": "/t/acme/no-such-page/",
    }
    for name, path in pages.items():
        phone.goto(live_server.url + path)
        if name == "search":
            expect(phone.locator("[data-testid=results] .result")).to_have_count(2)
        check(name, account=name != "not-found")  # the 404 page has no log-out form (see 404.html)
    phone.goto(f"{live_server.url}/t/acme/tokens/")
    phone.fill("#id_name", "phone")
    phone.click("text=Create token")
    expect(phone.locator("#new-key")).to_be_visible()
    check("tokens-new-key")

    phone.set_viewport_size({"width": 1200, "height": 900})
    for name, path in pages.items():
        phone.goto(live_server.url + path)
        phone.screenshot(path=str(shots / f"desktop-{name}.png"), full_page=True)


def test_select_images_in_the_library_tag_them_in_bulk_and_find_them_by_the_new_tag(
    page, phone, live_server, stack, acme, alice, bob, settings
):
    """A range of images selected with a click and a shift-click, tagged in one action; a search
    filtered by the new tag (answered by the index) finds exactly them. Then the library and the
    webhooks pages at phone width."""
    from playwright.sync_api import expect

    from webhooks.services import endpoint_create

    images = [upload_sample(acme, bob, name) for name in ("dog.jpg", "dog-with-person.jpg", "cat.png")]
    for image in images:
        wait_for_status(image, {"ready"})
    log_in(page, live_server, "bob")
    page.click("nav >> text=Library")
    tiles = page.locator("#library-grid .tile")
    expect(tiles).to_have_count(3)
    tiles.nth(0).locator("input.pick").click()
    tiles.nth(2).locator("input.pick").click(modifiers=["Shift"])
    expect(page.locator("#selected-count")).to_have_text("3")
    expect(page.locator("#library-grid .tile.selected")).to_have_count(3)
    page.select_option("#id_action", "add_tags")
    page.fill("#id_action_tags", "bulk-tagged")
    page.click("#bulk-submit")
    expect(page.locator(".messages")).to_contain_text("Add #bulk-tagged on 3 images: done, 3 changed.")
    expect(page.locator("#library-grid .tile .tags", has_text="#bulk-tagged")).to_have_count(3)
    shots = OUTPUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "library-bulk-tagged.png"), full_page=True)

    page.goto(f"{live_server.url}/t/acme/search/?q=a+photo&tags=bulk-tagged")
    cards = page.locator("[data-testid=results] .result")
    expect(cards).to_have_count(3)
    assert {cards.nth(i).get_attribute("data-asset-id") for i in range(3)} == {str(i.id) for i in images}
    page.goto(f"{live_server.url}/t/acme/search/?q=a+photo&tags=not-given-to-any")
    expect(cards).to_have_count(0)

    endpoint = endpoint_create(
        tenant=acme,
        created_by=alice,
        url="https://hooks.example-receiver.invalid/a/rather/long/path",
        events=["image.ready"],
    )
    phone.goto(f"{live_server.url}/accounts/login/")
    phone.fill("#id_username", "alice")
    phone.fill("#id_password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{live_server.url}/t/acme/")
    for name, path in {
        "library": "/t/acme/images/",
        "webhooks": "/t/acme/webhooks/",
        "webhook": f"/t/acme/webhooks/{endpoint.id}/",
        "detail-edit": f"/t/acme/images/{images[0].id}/",
    }.items():
        phone.goto(live_server.url + path)
        phone.screenshot(path=str(shots / f"phone-{name}.png"), full_page=True)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH, f"{name}: the page is {width} px wide on a {PHONE_WIDTH} px screen"

    # Auto-tags on a phone: the owner names labels, the library relabels, a label filters the library.
    settings.AUTO_TAG_MIN_SCORE = -1.0  # random weights: every label passes
    phone.goto(f"{live_server.url}/t/acme/")
    phone.click("nav >> text=Auto-tags")
    phone.fill("#id_labels", "Whiteboard, receipt")
    phone.click("text=Save and relabel")
    expect(phone.locator(".messages")).to_contain_text("Auto-tag again on 3 images: done, 3 changed.")
    width = phone.evaluate("document.documentElement.scrollWidth")
    phone.screenshot(path=str(shots / "phone-auto-tags.png"), full_page=True)
    assert width <= PHONE_WIDTH, f"auto-tags: the page is {width} px wide on a {PHONE_WIDTH} px screen"
    phone.click(".label-link >> text=receipt")
    expect(phone.locator("#library-grid .tile")).to_have_count(3)
    expect(phone.locator("#library-grid .tile .label", has_text="whiteboard")).to_have_count(3)
