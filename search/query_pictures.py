"""The query picture of a search on the page, kept in the user's session so that the pages and
orders of its results can be links: its vector and a small JPEG to show it, never the file."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

import numpy as np
from django.http import HttpRequest

from search.services import QueryPicture
from tenants.models import Tenant
from vectors.index import Vector

SESSION_KEY = "search_pictures"
KEPT = 5  # the latest pictures of a session; an older one's links ask for the picture again


@dataclass(frozen=True)
class KeptPicture:
    token: str
    name: str
    vector: Vector
    thumbnail: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.thumbnail).decode("ascii")


def picture_keep(request: HttpRequest, *, tenant: Tenant, name: str, picture: QueryPicture) -> KeptPicture:
    kept = KeptPicture(
        token=secrets.token_urlsafe(12), name=name[:200], vector=picture.vector, thumbnail=picture.thumbnail
    )
    entry = {
        "token": kept.token,
        "tenant": tenant.pk,
        "name": kept.name,
        "vector": base64.b64encode(np.asarray(kept.vector, dtype="<f4").tobytes()).decode("ascii"),
        "thumbnail": base64.b64encode(kept.thumbnail).decode("ascii"),
    }
    request.session[SESSION_KEY] = [*request.session.get(SESSION_KEY, [])[-(KEPT - 1) :], entry]
    return kept


def picture_recall(request: HttpRequest, *, tenant: Tenant, token: str) -> KeptPicture | None:
    """The session's picture under `token`, if it was kept for this tenant."""
    for entry in request.session.get(SESSION_KEY, []):
        if entry.get("token") == token and entry.get("tenant") == tenant.pk:
            return KeptPicture(
                token=token,
                name=entry["name"],
                vector=np.frombuffer(base64.b64decode(entry["vector"]), dtype="<f4").copy(),
                thumbnail=base64.b64decode(entry["thumbnail"]),
            )
    return None
