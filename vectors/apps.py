from __future__ import annotations

from django.apps import AppConfig


class VectorsConfig(AppConfig):
    """The wrappers of the two outside systems that hold vectors: the model (`vectors.embedding`)
    and Chroma (`vectors.index`). No models, no views: every app may use them, none owns them."""

    name = "vectors"
    verbose_name = "Vectors"

    def ready(self) -> None:
        from vectors import checks, index  # noqa: F401  (checks registers the system checks)
        from vectors.embedding import current_model_key

        index.configure(active_space=current_model_key)
