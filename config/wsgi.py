from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if settings.EMBED_RUNNER == "thread":  # the single-process default embeds and sends webhooks beside the web server
    from ingestion import background
    from webhooks import background as webhook_sender

    background.start()
    webhook_sender.start()
