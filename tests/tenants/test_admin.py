from __future__ import annotations

import pytest
from django.urls import reverse

from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.upload import assets_upload
from tests.conftest import login
from tests.factories import UserFactory, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(db):
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


def uploaded(tenant, user, *colors):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile(f"{i}.png", image_bytes("PNG", color=c)) for i, c in enumerate(colors)]
    return [o.asset for o in assets_upload(tenant=tenant, uploaded_by=user, files=files)]


def test_the_tenant_list_shows_image_counts_by_status(acme, bob, operator):
    _first, second = uploaded(acme, bob, (1, 1, 1), (2, 2, 2))
    ImageAsset.objects.filter(id=second.id).update(status=AssetStatus.FAILED, failure_reason="boom")
    page = login(operator).get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert '<td class="field-ready">1</td>' in page
    assert '<td class="field-failed">1</td>' in page


def test_operators_requeue_failed_images_and_they_become_ready(acme, bob, operator):
    [asset] = uploaded(acme, bob, (3, 3, 3))
    ImageAsset.objects.filter(id=asset.id).update(status=AssetStatus.FAILED, failure_reason="boom", attempts=5)
    response = login(operator).post(
        reverse("admin:ingestion_imageasset_changelist"),
        {"action": "requeue", "_selected_action": [str(asset.id)]},
        follow=True,
    )
    assert "1 images queued for embedding again" in response.content.decode()
    asset.refresh_from_db()
    assert (asset.status, asset.failure_reason) == (AssetStatus.READY, "")


def test_operators_requeue_a_tenants_failed_images(acme, bob, operator):
    [asset] = uploaded(acme, bob, (4, 4, 4))
    ImageAsset.objects.filter(id=asset.id).update(status=AssetStatus.FAILED)
    login(operator).post(
        reverse("admin:tenants_tenant_changelist"), {"action": "requeue_failed_images", "_selected_action": [acme.pk]}
    )
    asset.refresh_from_db()
    assert asset.status == AssetStatus.READY


def test_operators_add_members_with_roles(acme, operator):
    newcomer = UserFactory(username="newcomer")
    client = login(operator)
    url = reverse("admin:tenants_membership_add")
    response = client.post(url, {"tenant": acme.pk, "user": newcomer.pk, "role": "viewer"})
    assert response.status_code == 302
    assert newcomer.memberships.get().role == "viewer"


def test_tenant_members_without_staff_rights_cannot_reach_the_admin(acme, alice):
    response = login(alice).get(reverse("admin:tenants_tenant_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response.url
