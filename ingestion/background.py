"""The embedder of the single-process default (`EMBED_RUNNER=thread`): a thread beside the web
server, so an upload returns as soon as its files are stored and the page watches each image go
pending → processing → ready. It takes the oldest pending images of any tenant, a forward batch
at a time (`assets_embed_next_batch`), when an upload commits or every EMBED_POLL_SECONDS, which
also picks up images that another process (`import_images`) stored; between uploads it builds the
model `manage.py reindex` asked for, a step at a time. It is the only process that
opens the embedded Chroma directory (`vectors.index` holds a lock on it).

Nothing is left behind: at start, images a previous run left processing are put back in pending;
weights that cannot be loaded or Chroma out of reach leave images pending (logged once, tried
again later), never processing.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from ingestion.services.bulk import bulk_actions_resume
from ingestion.services.pipeline import assets_embed_next_batch, assets_requeue_interrupted
from ingestion.services.reindex import STEPPED, reindex_advance
from vectors.embedding import EmbeddingModelUnavailable
from vectors.index import IndexUnavailable

logger = logging.getLogger(__name__)

# Pause after a failure that will not pass at once (weights, Chroma), before trying again.
BACKOFF_SECONDS = 30.0

_wake = threading.Event()
_stop = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None


def start() -> bool:
    """Starts the background embedder in this process, once. Returns False if it runs already."""
    global _thread
    with _started:
        if _thread is not None:
            return False
        _thread = threading.Thread(target=_run, name="background-embedder", daemon=True)
        _thread.start()
        return True


def stop(timeout: float = 30) -> None:
    """Stops the embedder after its current batch (tests; the service's thread ends with its process)."""
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
    """New pending images were committed: look now rather than at the next poll."""
    _wake.set()


def _run() -> None:
    try:
        requeued = assets_requeue_interrupted()
        if requeued:
            logger.info("%d images left processing by the previous run are pending again", requeued)
        resumed = bulk_actions_resume(at_start=True)
        if resumed:
            logger.info("%d library actions left unfinished by the previous run are running again", resumed)
    finally:
        close_old_connections()
    last_error = ""
    while not _stop.is_set():
        _wake.wait(settings.EMBED_POLL_SECONDS)
        _wake.clear()
        if _stop.is_set():
            break
        pause = 0.0
        try:
            while assets_embed_next_batch().claimed and not _stop.is_set():
                pass
            # A model being built (`manage.py reindex`) takes the time between uploads, a step at a
            # time: an upload (which sets _wake) is embedded before the next step.
            while not _wake.is_set() and not _stop.is_set() and reindex_advance() == STEPPED:
                pass
            last_error = ""
        except (EmbeddingModelUnavailable, IndexUnavailable) as exc:
            if str(exc) != last_error:
                logger.error("Images stay pending: %s", exc)
                last_error = str(exc)
            pause = BACKOFF_SECONDS
        except Exception:
            logger.exception("The background embedder failed a batch; its images are tried again")
            pause = settings.EMBED_POLL_SECONDS
        finally:
            close_old_connections()
        if pause:
            _wake.wait(pause)
