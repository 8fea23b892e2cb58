from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Queues are declared here only: a worker started without -Q (the Makefile, compose, the tests)
# consumes every queue declared here. Interactive work has no queue: a search embeds its query in the
# web process, so it never waits behind an ingest batch (ARCHITECTURE.md).
QUEUE_INGESTION = "ingestion"
# Library actions on many images, and webhook deliveries: neither waits behind an ingest backlog.
QUEUE_BULK = "bulk"
QUEUE_WEBHOOKS = "webhooks"

app = Celery("imagesearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(QUEUE_INGESTION), Queue(QUEUE_BULK), Queue(QUEUE_WEBHOOKS)]
app.conf.task_default_queue = QUEUE_INGESTION
app.conf.task_routes = {
    # exact names are matched before patterns
    "ingestion.tasks.run_bulk_action": {"queue": QUEUE_BULK},
    "ingestion.tasks.resume_bulk_actions": {"queue": QUEUE_BULK},
    "ingestion.tasks.*": {"queue": QUEUE_INGESTION},
    "webhooks.tasks.*": {"queue": QUEUE_WEBHOOKS},
}
app.autodiscover_tasks()
