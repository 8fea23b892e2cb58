from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.audit import audit_record, token_label
from tenants.models import AuditAction, Tenant, TokenScope
from tenants.tokens import api_token_create


class Command(BaseCommand):
    help = "Creates a REST API token for a member of a tenant; the key is the last line printed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--user", required=True, help="username of a member of the tenant")
        parser.add_argument("--name", default="command line")
        parser.add_argument(
            "--scope",
            choices=TokenScope.values,
            default=TokenScope.WRITE,
            help="read (list, get, search), write (also upload, edit, delete) or admin (also members, "
            "invitations, webhooks, keys); default write. The user's role may allow less.",
        )

    def handle(self, *args: Any, tenant: str, user: str, name: str, scope: str, **options: Any) -> None:
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"There is no tenant {tenant!r}.")
        member = get_user_model().objects.filter(username=user).first()
        if member is None:
            raise CommandError(f"There is no user {user!r}.")
        try:
            token, key = api_token_create(tenant=target, user=member, name=name, scope=scope)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        audit_record(
            tenant=target, action=AuditAction.API_KEY_CREATED, target=token_label(token),
            detail={"scope": token.scope, "user": member.get_username(), "via": "create_api_token"},
        )  # fmt: skip
        self.stdout.write(f"Token {token.name!r} ({token.scope}) for {user} in {target.slug}; it is shown only now:")
        self.stdout.write(key)
