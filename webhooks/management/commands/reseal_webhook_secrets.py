from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks.services import endpoints_reseal


class Command(BaseCommand):
    help = (
        "Seals every webhook signing secret again under the current DJANGO_SECRET_KEY: run it after a key "
        "rotation (the old key in DJANGO_SECRET_KEY_FALLBACKS), before the old key is dropped."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        resealed, unreadable = endpoints_reseal()
        self.stdout.write(f"Sealed {resealed} webhook signing secrets again under the current key.")
        if unreadable:
            listed = "; ".join(f"{endpoint.tenant.slug}: {endpoint.url} ({endpoint.id})" for endpoint in unreadable)
            raise CommandError(
                f"{len(unreadable)} secrets open under none of the configured keys, left as they are: {listed}. "
                "Put the key they were sealed under in DJANGO_SECRET_KEY_FALLBACKS and run this again, or delete "
                "those endpoints and register them again."
            )
