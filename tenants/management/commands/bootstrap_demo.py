from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from tenants.models import Role, Tenant
from tenants.services import membership_set, tenant_create


class Command(BaseCommand):
    help = (
        "Creates the demo tenant and an operator login, and prints the credentials. Run again (every "
        "`make run` does), it prints the same password: open sessions stay logged in. --reset-password "
        "makes a new one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")
        parser.add_argument("--reset-password", action="store_true", help="give the demo login a new password")

    def handle(self, *args: Any, username: str, tenant: str, url: str, reset_password: bool, **options: Any) -> None:
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        # The password is kept beside the data it opens (readable by its owner only), so that it can be
        # printed again; only its hash is in the database.
        remembered = Path(settings.DATA_DIR) / f"{username}-password.txt"
        password = remembered.read_text().strip() if remembered.is_file() else ""
        if created or reset_password:
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.save()
            remembered.parent.mkdir(parents=True, exist_ok=True)
            remembered.touch(mode=0o600, exist_ok=True)
            remembered.write_text(password + "\n")
        demo = Tenant.objects.filter(slug=tenant).first() or tenant_create(slug=tenant, name="Demo", owner=user)
        membership_set(tenant=demo, user=user, role=Role.OWNER)
        if password and user.check_password(password):
            self.stdout.write(self.style.SUCCESS(f"Open {url} and log in as {username} / {password}"))
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Open {url} and log in as {username} with the password you set.")
                + " (`manage.py bootstrap_demo --reset-password` makes a new one.)"
            )
        self.stdout.write(f"Operators' admin: {url}admin/ (same login). Tenant: {demo.slug}.")
