from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from vectors.embedding import EmbeddingModelUnavailable, get_embedder


class Command(BaseCommand):
    help = "Loads the configured OpenCLIP weights (downloading them on first use) and reports on them."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            embedder = get_embedder()
        except EmbeddingModelUnavailable as exc:
            raise CommandError(str(exc)) from exc
        spec = embedder.spec
        self.stdout.write(
            self.style.SUCCESS(f"Model {spec.name} / {spec.pretrained} ready on {embedder.device}")
            + f" ({embedder.dimensions} dimensions, collection {embedder.model_key})."
        )
        if spec.uses_random_weights:
            self.stdout.write(self.style.WARNING("Random weights: search results are meaningless."))
