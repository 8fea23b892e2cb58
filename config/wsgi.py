from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if settings.EMBED_RUNNER == "thread":  # the single-process default embeds and sends webhooks beside the web server
    from django.core.exceptions import ImproperlyConfigured

    from ingestion import background
    from vectors import index
    from webhooks import background as webhook_sender

    if not settings.CHROMA_URL:
        try:
            index.check_available()  # the embedded directory is this process's, or it does not start
        except index.IndexLocked as exc:
            raise ImproperlyConfigured(str(exc)) from exc
    background.start()
    webhook_sender.start()
