"""Two tenants with ready images, seeded through the services users trigger (uploads embed in-process):
Umbra, whose data must never reach anyone else, and Lumen, the other tenant. Both hold the same
pictures with overlapping categories and tags, so a broken tenant condition would show up as a hit
at distance 0 from the other tenant, not as an absence that could pass by accident.

Umbra's names are distinctive on purpose: a response body that contains one of `Seeded.secrets`
shows Umbra's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.filters import MetadataFilters
from ingestion.models import AssetStatus, BulkAction, ImageAsset
from ingestion.services.bulk import bulk_action_start
from ingestion.services.upload import assets_upload
from tenants.models import ApiToken, Membership, Tenant, TokenScope
from tenants.services import tenant_create
from tenants.tokens import api_token_create
from tests.factories import UserFactory, image_bytes
from tests.testenv import SAMPLES
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

# (picture, category, source, tags); the file is stored as "<slug>-<n>-<picture>"
PICTURES: list[tuple[str, str, str, list[str]]] = [
    ("dog.jpg", "pets", "cookbook", ["dog"]),
    ("dog-with-person.jpg", "people", "cookbook", ["dog", "person"]),
    ("cat.png", "pets", "archive", ["cat"]),
    ("red.png", "", "", []),
]


@dataclass
class Seeded:
    tenant: Tenant
    owner: User
    membership: Membership
    images: list[ImageAsset]
    token: ApiToken
    key: str
    secrets: list[str] = field(default_factory=list)
    webhook: WebhookEndpoint | None = None
    bulk_action: BulkAction | None = None

    def __repr__(self) -> str:
        return f"<tenant {self.tenant.slug}>"

    @property
    def image_ids(self) -> set[str]:
        return {str(image.id) for image in self.images}


def picture_bytes(picture: str) -> bytes:
    return image_bytes("PNG", color=(200, 30, 30)) if picture == "red.png" else (SAMPLES / picture).read_bytes()


def seed_tenant(slug: str, name: str) -> Seeded:
    """A tenant named `name`, owned by `<slug>-owner` (not staff), with PICTURES (each also tagged
    with a tag of its own tenant, `<slug>-only`, and from source `<slug>-cam` where it has none),
    all ready, an API token of the owner (admin scope), a webhook and a finished library action."""
    owner = UserFactory(username=f"{slug}-owner")
    tenant = tenant_create(slug=slug, name=name, owner=owner)
    membership = Membership.objects.get(tenant=tenant, user=owner)  # tenant_create made it
    images = []
    for n, (picture, category, source, tags) in enumerate(PICTURES):
        file = SimpleUploadedFile(f"{slug}-{n}-{picture}", picture_bytes(picture))
        [outcome] = assets_upload(
            tenant=tenant,
            uploaded_by=owner,
            files=[file],
            category=category,
            source=source or f"{slug}-cam",
            tags=[*tags, f"{slug}-only"],
        )
        assert outcome.asset is not None, outcome.error
        images.append(outcome.asset)
    ready = ImageAsset.objects.for_tenant(tenant).filter(status=AssetStatus.READY).count()
    assert ready == len(PICTURES), "every seeded image is embedded and ready"
    # The widest scope: only the tenant stands between this key and everything.
    token, key = api_token_create(tenant=tenant, user=owner, name=f"{slug} deploy key", scope=TokenScope.ADMIN)
    # A webhook (its host never resolves: nothing is sent anywhere) and a library action, done.
    webhook = endpoint_create(
        tenant=tenant, created_by=owner, url=f"https://hooks.{slug}-receiver.invalid/images", events=["image.ready"]
    )
    bulk_action, _ = bulk_action_start(
        tenant=tenant, created_by=owner, key=f"{slug}-seed", kind="add_tags", tags=[f"{slug}-only"],
        filters=MetadataFilters(),
    )  # fmt: skip
    secrets = [
        name,
        slug,
        str(tenant.vector_uuid),
        token.prefix,
        token.name,
        f"{slug}-only",
        f"{slug}-cam",
        *(str(image.id) for image in images),
        *(str(image.id).replace("-", "") for image in images),
        *(image.original_filename for image in images),
        f"{slug}-receiver",
        str(webhook.id),
        str(bulk_action.id),
    ]
    return Seeded(tenant, owner, membership, images, token, key, secrets, webhook, bulk_action)


def seed_two_tenants() -> tuple[Seeded, Seeded]:
    """(Umbra, Lumen)."""
    return seed_tenant("umbra", "Umbra Research"), seed_tenant("lumen", "Lumen Works")


def leaked(body: str, secrets: list[str], *, allowed: str = "") -> list[str]:
    """The secrets found in a response body, leaving out those the request itself named (`allowed`,
    e.g. the path: a slug or an id the caller sent is not a leak by itself)."""
    lowered = body.lower()
    return [s for s in secrets if s.lower() in lowered and s.lower() not in allowed.lower()]
