from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Queues are named here and nowhere else: bulk ingestion must never delay interactive work.
QUEUE_INGESTION = "ingestion"
QUEUE_INTERACTIVE = "interactive"

app = Celery("imagesearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = QUEUE_INGESTION
app.conf.task_routes = {
    "ingestion.tasks.*": {"queue": QUEUE_INGESTION},
    "search.tasks.*": {"queue": QUEUE_INTERACTIVE},
}
app.autodiscover_tasks()
