"""People work in Debian's chromium: an owner invites a colleague, the mail arrives at a real SMTP server
on loopback, the colleague follows its link, signs up and lands in the tenant, where they may search but
not manage people. The people pages fit a 390 px phone. Screenshots: test-output/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tenants.models import Membership, Role
from tests.conftest import wait_for_status
from tests.factories import PASSWORD
from tests.search.conftest import upload_sample
from tests.tenants.conftest import invitation_link
from tests.test_browser import PHONE_WIDTH, browser, log_in, page, phone  # noqa: F401 (fixtures)
from tests.testenv import OUTPUT

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a long and unusual passphrase 42"


def shot(target, name: str) -> None:
    (OUTPUT / "screenshots").mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(OUTPUT / "screenshots" / f"{name}.png"), full_page=True)


def test_an_owner_invites_a_colleague_who_signs_up_from_the_mail_and_may_search_but_not_manage(
    browser,  # noqa: F811
    page,  # noqa: F811
    live_server,
    acme,
    alice,
    bob,
    mail_server,
):
    dog = upload_sample(acme, bob, "dog.jpg", tags=["dog"])
    wait_for_status(dog, {"ready"})
    log_in(page, live_server, "alice")
    page.click("nav >> text=Members")
    expect(page.locator("#members tr[data-member]")).to_have_count(3)
    page.fill("#id_email", "nina@example.com")
    page.select_option("#id_role", "member")
    page.click("#invite button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Invitation sent to nina@example.com.")
    expect(page.locator('#invitations tr[data-invitation="nina@example.com"]')).to_be_visible()
    shot(page, "members-invited")

    [mail] = mail_server.wait_for(1)
    assert mail.recipients == ["nina@example.com"]
    link = invitation_link(mail.text)
    assert link.startswith(live_server.url)

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    nina = context.new_page()
    nina.goto(link)
    expect(nina.locator("[data-testid=invitation-signup]")).to_be_visible()
    shot(nina, "invitation-signup")
    nina.fill("#id_username", "nina")
    nina.fill("#id_password1", NEW_PASSWORD)
    nina.fill("#id_password2", NEW_PASSWORD)
    nina.click("text=Create account and join")
    nina.wait_for_url(f"{live_server.url}/t/acme/")
    expect(nina.locator(".messages")).to_contain_text("Welcome to Acme: you joined as member.")
    assert Membership.objects.get(tenant=acme, user__username="nina").role == Role.MEMBER

    nav = nina.locator("header nav")
    expect(nav.get_by_role("link", name="Search")).to_be_visible()
    expect(nav.get_by_role("link", name="Members")).to_have_count(0)
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    nav.get_by_role("link", name="Search").click()
    nina.fill("#id_q", "a photo of a dog")
    nina.click("#text-search button[type=submit]")
    expect(nina.locator("[data-testid=results] .result")).to_have_count(1)
    shot(nina, "new-member-search")
    refused = nina.goto(f"{live_server.url}/t/acme/members/")
    assert refused is not None and refused.status == 403
    shot(nina, "new-member-members-403")
    context.close()

    page.goto(f"{live_server.url}/t/acme/audit/")
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_contain_text("Invitation accepted")
    expect(rows.nth(1)).to_contain_text("Invitation sent")
    shot(page, "audit-log")


def test_the_people_pages_fit_a_phone(phone, live_server, acme, alice, bob, mail_server):  # noqa: F811
    """At 390 px no people page is wider than the screen, and Log out stays on it."""
    phone.goto(f"{live_server.url}/accounts/login/")
    phone.fill("#id_username", "alice")
    phone.fill("#id_password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{live_server.url}/t/acme/")
    phone.goto(f"{live_server.url}/t/acme/members/")
    phone.fill("#id_email", "someone.with.a.rather.long.address@subdomain.example.com")
    phone.click("#invite button[type=submit]")
    expect(phone.locator(".messages")).to_contain_text("Invitation sent")
    link = invitation_link(mail_server.wait_for(1)[0].text)
    bobs = Membership.objects.get(tenant=acme, user=bob).pk
    pages = {
        "members": "/t/acme/members/",
        "member-remove": f"/t/acme/members/{bobs}/remove/",
        "audit-log": "/t/acme/audit/",
        "account": "/accounts/",
        "password-change": "/accounts/password/change/",
    }
    for name, path in pages.items():
        phone.goto(live_server.url + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        shot(phone, f"phone-{name}")
        assert width <= PHONE_WIDTH, f"{name}: the page is {width} px wide on a {PHONE_WIDTH} px screen"
        expect(phone.get_by_role("button", name="Log out")).to_be_in_viewport()
    phone.get_by_role("button", name="Log out").click()
    for name, path in {"password-reset": "/accounts/password/reset/", "invitation-signup": link}.items():
        phone.goto(path if path.startswith("http") else live_server.url + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        shot(phone, f"phone-{name}")
        assert width <= PHONE_WIDTH, f"{name}: the page is {width} px wide on a {PHONE_WIDTH} px screen"
