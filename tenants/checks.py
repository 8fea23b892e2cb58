from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register(deploy=True)
def mail_settings_check(**_: Any) -> list[CheckMessage]:
    """In production, mail written to files reaches no one: invitations and password resets with it."""
    if settings.PRODUCTION and settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
        return [
            Warning(
                f"EMAIL_URL is not set: invitations and password resets are written as files to "
                f"{settings.EMAIL_FILE_PATH} and nobody receives them.",
                hint="Set EMAIL_URL=smtp+tls://user:password@smtp.example.com:587 and DEFAULT_FROM_EMAIL.",
                id="tenants.W001",
            )
        ]
    return []
