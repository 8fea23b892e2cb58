"""Webhooks: endpoints registered by a tenant's owners and admins, events recorded as deliveries in
the transaction that caused them (`events_emit`), and the deliveries sent, in order per endpoint,
signed per Standard Webhooks, retried with backoff for a day (`endpoint_deliver`).

Who sends: a Celery task per endpoint (`webhooks.tasks`), queued once the emitting transaction
commits, and by the periodic sweep for retries and anything a lost task left behind; in the
single-process default a thread of the web process (`webhooks.background`) instead."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from tenants.models import Tenant
from webhooks.addresses import AddressRefused, check_url, connect_address
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.signing import SecretUnreadable, new_secret, reseal, signed_headers

logger = logging.getLogger(__name__)

# Seconds before the next attempt after the n-th failure; the last one repeats until RETRY_FOR has
# passed since the event, when the delivery is given up and the endpoint's next one goes.
RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
RETRY_FOR = timedelta(days=1)
LEASE = timedelta(minutes=2)  # renewed at every delivery; a sender that died leaves it to expire
USER_AGENT = "imagesearch-webhooks/1"


# --- endpoints ----------------------------------------------------------------------------------


def endpoint_create(
    *, tenant: Tenant, created_by: User | None, url: str, events: Sequence[str], description: str = ""
) -> WebhookEndpoint:
    """Registers an endpoint (validated by `webhooks.forms.WebhookEndpointForm` first); its secret
    is on the returned object and shown once."""
    endpoint = WebhookEndpoint(
        tenant=tenant,
        created_by=created_by,
        url=url,
        events=list(dict.fromkeys(events)),
        description=description.strip(),
    )
    endpoint.secret = new_secret()  # the row keeps it sealed; the caller shows it once
    _validate(endpoint)
    endpoint.save(force_insert=True)
    return endpoint


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> list[str]:
    """Changes what is given; returns the names of the fields that changed. Deliveries already
    recorded keep going to the endpoint (a new URL gets them)."""
    changed = []
    for name, value in (
        ("url", url),
        ("events", list(dict.fromkeys(events)) if events is not None else None),
        ("description", description.strip() if description is not None else None),
        ("is_active", is_active),
    ):
        if value is not None and getattr(endpoint, name) != value:
            setattr(endpoint, name, value)
            changed.append(name)
    if changed:
        _validate(endpoint)
        endpoint.save(update_fields=[*changed, "updated_at"])
    return changed


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Removes the endpoint and its deliveries, those still waiting included."""
    endpoint.delete()


def endpoints_reseal() -> tuple[int, list[WebhookEndpoint]]:
    """Seals every endpoint's signing secret again under the current SECRET_KEY (after a rotation,
    before the old key leaves SECRET_KEY_FALLBACKS). Returns how many were sealed again, and the
    endpoints whose secret no configured key opens (left as they are)."""
    resealed, unreadable = 0, []
    for endpoint in WebhookEndpoint.objects.select_related("tenant").order_by("created_at"):
        try:
            sealed = reseal(endpoint.sealed_secret)
        except SecretUnreadable:
            unreadable.append(endpoint)
            continue
        # Only if unchanged meanwhile: an endpoint deleted or made again keeps what it has.
        resealed += WebhookEndpoint.objects.filter(id=endpoint.id, sealed_secret=endpoint.sealed_secret).update(
            sealed_secret=sealed
        )
    return resealed, unreadable


def _validate(endpoint: WebhookEndpoint) -> None:
    endpoint.full_clean(exclude=["sealed_secret", "lease_until"])
    try:
        check_url(endpoint.url)
    except AddressRefused as exc:
        raise ValidationError({"url": str(exc)}) from exc


# --- events -------------------------------------------------------------------------------------


def events_emit(*, tenant: Tenant, event_type: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Records one delivery of each item (the event's `data`) for every active endpoint of the
    tenant that listens to `event_type`, in the caller's transaction; they are sent once it commits.
    Returns the number of deliveries recorded."""
    endpoints = [e for e in WebhookEndpoint.objects.filter(tenant=tenant, is_active=True) if event_type in e.events]
    if not endpoints:
        return 0
    now = timezone.now()
    stamp = now.isoformat().replace("+00:00", "Z")
    deliveries = [
        WebhookDelivery(
            tenant=tenant,
            endpoint=endpoint,
            message_id=f"msg_{uuid.uuid4().hex}",
            event_type=event_type,
            payload={"type": event_type, "timestamp": stamp, "data": dict(item)},
            created_at=now,
            next_attempt_at=now,
        )
        for item in items
        for endpoint in endpoints
    ]
    WebhookDelivery.objects.bulk_create(deliveries)  # in order: the ids keep each endpoint's order
    endpoint_ids = [endpoint.id for endpoint in endpoints]
    transaction.on_commit(lambda: send_soon(endpoint_ids))
    return len(deliveries)


def send_soon(endpoint_ids: Sequence[uuid.UUID]) -> None:
    """Hands the endpoints to whoever sends (see the module's notes). A broker out of reach loses
    nothing: the deliveries wait in the database for the sweep."""
    if settings.EMBED_RUNNER == "thread":
        from webhooks import background  # it imports this module to run it

        background.notify()
        return
    from webhooks.tasks import deliver_webhooks  # the task module imports this one to run it

    for endpoint_id in endpoint_ids:
        try:
            deliver_webhooks.delay(str(endpoint_id))
        except Exception:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                raise
            logger.warning("Could not queue webhook deliveries; the sweep sends them", exc_info=True)


# --- sending ------------------------------------------------------------------------------------


def retry_delay(attempts: int) -> int:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


def _take_lease(endpoint_id: uuid.UUID) -> bool:
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(WebhookEndpoint.objects.filter(free, id=endpoint_id).update(lease_until=now + LEASE))


def _head(endpoint_id: uuid.UUID) -> WebhookDelivery | None:
    """The endpoint's oldest delivery not yet done: nothing after it goes before it does."""
    return (
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=DeliveryStatus.PENDING)
        .select_related("endpoint")
        .order_by("id")
        .first()
    )


def endpoint_deliver(*, endpoint_id: uuid.UUID | str) -> int | None:
    """Sends the endpoint's due deliveries, oldest first, until one fails or none is due. Returns
    the seconds until its next delivery is due (None when nothing waits), for the caller to come
    back then; does nothing while another sender holds the endpoint."""
    key = uuid.UUID(str(endpoint_id))
    while _take_lease(key):
        try:
            wait = _deliver_due(key)
        finally:
            WebhookEndpoint.objects.filter(id=key).update(lease_until=None)
        head = _head(key)  # committed meanwhile, while the lease kept its own sender away
        if head is None or head.next_attempt_at > timezone.now():
            return wait
    return None


def _deliver_due(endpoint_id: uuid.UUID) -> int | None:
    while (head := _head(endpoint_id)) is not None:
        now = timezone.now()
        if head.next_attempt_at > now:
            return max(1, int((head.next_attempt_at - now).total_seconds()))
        if not head.endpoint.is_active:
            return None  # paused: its deliveries wait until it is active again
        WebhookEndpoint.objects.filter(id=endpoint_id).update(lease_until=now + LEASE)
        if not _attempt(head):
            head.refresh_from_db()
            if head.status == DeliveryStatus.PENDING:
                return retry_delay(head.attempts)
    return None


def _attempt(delivery: WebhookDelivery) -> bool:
    """One try; records its outcome. True when the receiver took it (a 2xx answer)."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    now = timezone.now()
    code: int | None = None
    try:
        response = post_signed(delivery.endpoint, delivery.message_id, body)
        code = response.status_code
        error = "" if 200 <= code < 300 else _describe(response)
    except AddressRefused as exc:
        error = f"Refused: {exc}"
    except SecretUnreadable as exc:
        error = str(exc)
    except httpx.TimeoutException:
        error = f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s."
    except (httpx.HTTPError, OSError) as exc:
        error = f"Could not connect: {exc}"
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "last_attempt_at": now, "last_status_code": code}
    if not error:
        fields |= {"status": DeliveryStatus.SUCCEEDED, "delivered_at": now, "last_error": ""}
    elif now - delivery.created_at >= RETRY_FOR:
        fields |= {"status": DeliveryStatus.FAILED, "last_error": f"{error} Gave up after {attempts} attempts."}
    else:
        fields |= {"last_error": error, "next_attempt_at": now + timedelta(seconds=retry_delay(attempts))}
    WebhookDelivery.objects.filter(id=delivery.id).update(**fields)
    return not error


def _describe(response: httpx.Response) -> str:
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirects are not followed (to {response.headers.get('location', '?')})."
    return f"HTTP {response.status_code} {response.reason_phrase}: {response.text[:200]}".rstrip(": ")


def post_signed(endpoint: WebhookEndpoint, message_id: str, body: bytes) -> httpx.Response:
    """POSTs the body, signed, to the endpoint's URL, connecting to the address that was checked
    (the host's name still in the Host header and, for https, in TLS), never following a redirect."""
    parts = urlsplit(endpoint.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = connect_address(host, port)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    headers = {
        **signed_headers(endpoint.secret, message_id, int(timezone.now().timestamp()), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": parts.netloc.rsplit("@", 1)[-1],
    }
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        return client.post(target, content=body, headers=headers, extensions=extensions)


def endpoints_due() -> list[uuid.UUID]:
    """Endpoints whose oldest waiting delivery is due (the sweep's work), and whose sender is free."""
    now = timezone.now()
    head = WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), status=DeliveryStatus.PENDING).order_by("id")
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return list(
        WebhookEndpoint.objects.annotate(head_due_at=Subquery(head.values("next_attempt_at")[:1]))
        .filter(free, is_active=True, head_due_at__lte=now)
        .values_list("id", flat=True)
    )


def deliveries_send_due() -> int:
    """Sends every due delivery of every endpoint, here and now (the thread of the single-process
    default; a command). Returns how many endpoints were served."""
    endpoints = endpoints_due()
    for endpoint_id in endpoints:
        endpoint_deliver(endpoint_id=endpoint_id)
    return len(endpoints)
