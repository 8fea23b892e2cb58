"""Which vector spaces are live, as every process sees them: the active model (searches, uploads,
labels) and the one being built by `manage.py reindex`, if any (uploads are embedded into it too).

Read from the database (`VectorSpace`) and kept per process for VECTOR_SPACES_REFRESH_SECONDS, so a
switch made by another process reaches running web servers and workers within that time, without a
restart; `refresh()` forgets at once (the process that switched). With no row (no reindex ever ran)
the settings' model is active. `vectors` is told to ask here (`ingestion.apps`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, OperationalError

from ingestion.models import VectorSpace, VectorSpaceState
from vectors.embedding import ModelSpec, model_key, spec_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSpaces:
    active: ModelSpec
    building: ModelSpec | None = None

    @property
    def specs(self) -> list[ModelSpec]:
        """The models every new vector is made with: the active one first."""
        return [self.active] if self.building is None else [self.active, self.building]

    @property
    def keys(self) -> list[str]:
        return [model_key(spec) for spec in self.specs]


_lock = threading.Lock()
_cached: tuple[float, ModelSpec, LiveSpaces] | None = None


def spec_of(space: VectorSpace) -> ModelSpec:
    return spec_for(name=space.model, pretrained=space.pretrained)


def live_spaces(*, fresh: bool = False) -> LiveSpaces:
    global _cached
    configured = ModelSpec.from_settings()
    now = time.monotonic()
    with _lock:
        cached = _cached
    if (
        not fresh
        and cached is not None
        and cached[1] == configured
        and now - cached[0] < settings.VECTOR_SPACES_REFRESH_SECONDS
    ):
        return cached[2]
    try:
        rows = {
            row.state: row
            for row in VectorSpace.objects.filter(state__in=[VectorSpaceState.ACTIVE, VectorSpaceState.BUILDING])
        }
    except DatabaseError as exc:
        if VectorSpace._meta.db_table in str(exc):  # not migrated yet (`check_model` before `migrate`)
            return LiveSpaces(active=configured)
        if not isinstance(exc, OperationalError):
            raise
        # The database out of reach: what was read last, or the settings' model (`check_model` and a
        # worker's start load the weights before anything needs the database).
        logger.warning("Could not read the active model from the database: %s", " ".join(str(exc).split())[:200])
        return cached[2] if cached is not None else LiveSpaces(active=configured)
    active = rows.get(VectorSpaceState.ACTIVE)
    building = rows.get(VectorSpaceState.BUILDING)
    spaces = LiveSpaces(
        active=spec_of(active) if active else configured, building=spec_of(building) if building else None
    )
    if spaces.active != configured:
        _say_once_that_settings_are_not_used(spaces.active, configured)
    with _lock:
        _cached = (now, configured, spaces)
    return spaces


_said: set[tuple[ModelSpec, ModelSpec]] = set()


def _say_once_that_settings_are_not_used(active: ModelSpec, configured: ModelSpec) -> None:
    if (active, configured) in _said:
        return
    _said.add((active, configured))
    logger.warning(
        "The active model is %s (%s), switched to by `manage.py reindex`; CLIP_MODEL=%s and CLIP_PRETRAINED=%s "
        "are not used. Change models with `manage.py reindex --model NAME --pretrained TAG_OR_PATH`.",
        active.name, active.pretrained, configured.name, configured.pretrained,
    )  # fmt: skip


def describe_settings_model() -> str:
    """The settings' model, in words, when it is not the active one ("" when it is)."""
    configured = ModelSpec.from_settings()
    active = live_spaces(fresh=True).active
    if active == configured:
        return ""
    return f"CLIP_MODEL={configured.name} and CLIP_PRETRAINED={configured.pretrained} are not used since a reindex"


def refresh() -> None:
    global _cached
    with _lock:
        _cached = None


def active_spec() -> ModelSpec:
    return live_spaces().active


def live_keys() -> list[str]:
    return live_spaces().keys
