from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from tenants.models import Role, Tenant
from tenants.services import membership_set, tenant_create


class Command(BaseCommand):
    help = "Creates (or refreshes) the demo tenant and an operator login, and prints the credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args: Any, username: str, tenant: str, url: str, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.save()
        demo = Tenant.objects.filter(slug=tenant).first() or tenant_create(slug=tenant, name="Demo", owner=user)
        membership_set(tenant=demo, user=user, role=Role.OWNER)
        self.stdout.write(self.style.SUCCESS(f"Open {url} and log in as {username} / {password}"))
        self.stdout.write(f"Operators' admin: {url}admin/ (same login). Tenant: {demo.slug}.")
