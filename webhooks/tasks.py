from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webhooks.services import endpoint_deliver, endpoints_due

# Waits up to this long are a countdown on the task; longer ones are left to the sweep (every 30 s),
# since Redis hands a task held longer than its visibility timeout to a second worker.
COUNTDOWN_MAX = 300


@shared_task(acks_late=True, reject_on_worker_lost=True, name="webhooks.tasks.deliver_webhooks")
def deliver_webhooks(endpoint_id: str) -> int | None:
    """Sends an endpoint's due deliveries in order; comes back when the next retry is due."""
    wait = endpoint_deliver(endpoint_id=endpoint_id)
    if wait is not None and wait <= COUNTDOWN_MAX and settings.EMBED_RUNNER == "celery":
        deliver_webhooks.apply_async(args=(endpoint_id,), countdown=wait)
    return wait


@shared_task(name="webhooks.tasks.send_due_deliveries")
def send_due_deliveries() -> int:
    """The sweep (Celery beat): every endpoint with a due delivery gets a sender."""
    endpoints = endpoints_due()
    for endpoint_id in endpoints:
        deliver_webhooks.delay(str(endpoint_id))
    return len(endpoints)
