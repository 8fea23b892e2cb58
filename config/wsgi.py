from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if settings.EMBED_RUNNER == "thread":  # the single-process default embeds beside the web server
    from ingestion import background

    background.start()
