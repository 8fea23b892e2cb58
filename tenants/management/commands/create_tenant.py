from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Creates a tenant, optionally with an existing user as its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", help="username of an existing user who becomes the owner")
        parser.add_argument("--quota-bytes", type=int, help="storage quota (default: TENANT_DEFAULT_QUOTA_BYTES)")

    def handle(
        self, *args: Any, slug: str, name: str, owner: str | None, quota_bytes: int | None, **options: Any
    ) -> None:
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"There is no user {owner!r}; create it first (manage.py createsuperuser).")
        try:
            tenant = tenant_create(slug=slug, name=name, owner=user, quota_bytes=quota_bytes)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created tenant {tenant.slug!r} ({tenant.name})" + (f" owned by {owner}" if owner else "")
            )
        )
