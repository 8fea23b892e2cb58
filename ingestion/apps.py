from __future__ import annotations

from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from ingestion import spaces
        from vectors import embedding, index

        # The model that is active, and the spaces metadata changes and deletions reach, are the
        # database's (`manage.py reindex` switches them), no longer only the settings'.
        embedding.configure(active_spec=spaces.active_spec)
        index.configure(active_space=embedding.current_model_key, write_spaces=spaces.live_keys)
