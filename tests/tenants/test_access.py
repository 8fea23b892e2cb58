from __future__ import annotations

import pytest
from django.urls import reverse

from tenants.models import Membership, Role
from tenants.services import membership_set, tenant_create
from tests.conftest import login


def test_a_user_with_one_tenant_lands_on_it(acme, bob):
    response = login(bob).get(reverse("tenants:home"))
    assert response.status_code == 302
    assert response.url == reverse("ingestion:dashboard", args=["acme"])


def test_a_user_with_several_tenants_chooses_then_the_choice_is_remembered(acme, globex, bob):
    membership_set(tenant=globex, user=bob, role=Role.VIEWER)
    client = login(bob)
    page = client.get(reverse("tenants:home"))
    assert page.status_code == 200
    assert b"Acme" in page.content and b"Globex" in page.content
    client.get(reverse("ingestion:dashboard", args=["globex"]))
    assert client.get(reverse("tenants:home")).url == reverse("ingestion:dashboard", args=["globex"])


def test_the_dashboard_shows_role_and_counts(acme, vera):
    page = login(vera).get(reverse("ingestion:dashboard", args=["acme"])).content.decode()
    assert "You are viewer here" in page
    assert "Upload images" not in page


@pytest.mark.parametrize("slug", ["acme", "no-such-tenant"])
def test_non_members_get_the_same_404_for_existing_and_missing_tenants(acme, globex, charlie, slug):
    assert login(charlie).get(reverse("ingestion:dashboard", args=[slug])).status_code == 404


def test_an_inactive_tenant_is_invisible_to_its_members(acme, bob):
    acme.is_active = False
    acme.save()
    assert login(bob).get(reverse("ingestion:dashboard", args=["acme"])).status_code == 404


def test_memberships_are_unique_and_roles_can_change(acme, bob):
    membership_set(tenant=acme, user=bob, role=Role.ADMIN)
    assert Membership.objects.get(tenant=acme, user=bob).role == Role.ADMIN
    assert Membership.objects.filter(user=bob).count() == 1


@pytest.mark.parametrize(
    ("role", "upload", "delete", "manage"),
    [
        (Role.OWNER, True, True, True),
        (Role.ADMIN, True, True, True),
        (Role.MEMBER, True, True, False),
        (Role.VIEWER, False, False, False),
    ],
)
def test_role_permissions(role, upload, delete, manage):
    membership = Membership(role=role)
    assert (membership.can_upload, membership.can_delete, membership.can_manage) == (upload, delete, manage)


def test_tenant_slugs_are_validated(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="slug"):
        tenant_create(slug="Not a slug!", name="Bad")


def test_the_random_weights_banner_shows_only_with_random_weights(acme, bob, settings):
    url = reverse("ingestion:dashboard", args=["acme"])
    assert b"random-weights-banner" not in login(bob).get(url).content
    settings.CLIP_PRETRAINED = "random"
    page = login(bob).get(url).content.decode()
    assert "search results are meaningless" in page
    assert "random-weights-banner" in login(bob).get(reverse("login")).content.decode()
