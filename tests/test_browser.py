"""A person's path through the upload page, in Debian's chromium driven by playwright, against
the full stack: statuses change from pending to ready on the page without a reload."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from django.db import connections

from tests.factories import PASSWORD
from tests.testenv import OUTPUT, SAMPLES

pytestmark = [pytest.mark.browser, pytest.mark.stack]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page(monkeypatch) -> Iterator[object]:
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
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()
        # Connections opened while playwright's loop ran belong to its context: close them here.
        connections.close_all()


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
    page.click("#upload-button")
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
