from __future__ import annotations

from django.http import HttpRequest

from vectors.embedding import uses_random_weights


def embedding_model(request: HttpRequest) -> dict[str, bool]:
    return {"random_weights": uses_random_weights()}
