"""The webhook sender of the single-process default (`EMBED_RUNNER=thread`): a thread beside the web
server that sends due deliveries when an event commits (`notify`) and every POLL_SECONDS, which
covers retries and deliveries recorded by another process."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections

from webhooks.services import deliveries_send_due

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0

_wake = threading.Event()
_stop = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None


def start() -> bool:
    global _thread
    with _started:
        if _thread is not None:
            return False
        _thread = threading.Thread(target=_run, name="webhook-sender", daemon=True)
        _thread.start()
        return True


def stop(timeout: float = 30) -> None:
    global _thread
    with _started:
        if _thread is None:
            return
        _stop.set()
        _wake.set()
        _thread.join(timeout)
        _thread = None
        _stop.clear()


def notify() -> None:
    _wake.set()


def _run() -> None:
    while not _stop.is_set():
        _wake.wait(POLL_SECONDS)
        _wake.clear()
        if _stop.is_set():
            break
        try:
            deliveries_send_due()
        except Exception:
            logger.exception("The webhook sender failed a round; it tries again")
        finally:
            close_old_connections()
