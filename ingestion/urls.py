from __future__ import annotations

from django.urls import path

from ingestion import views

app_name = "ingestion"

urlpatterns = [
    path("t/<slug:tenant_slug>/", views.dashboard, name="dashboard"),
    path("t/<slug:tenant_slug>/upload/", views.upload, name="upload"),
    path("t/<slug:tenant_slug>/images/", views.library, name="library"),
    path("t/<slug:tenant_slug>/images/actions/", views.bulk_action_create, name="bulk-action"),
    path("t/<slug:tenant_slug>/images/actions/<uuid:action_id>/", views.bulk_action_status, name="bulk-action-status"),
    path("t/<slug:tenant_slug>/auto-tags/", views.labels, name="labels"),
    path("t/<slug:tenant_slug>/images/status/", views.asset_status, name="status"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/thumbnail/", views.thumbnail, name="thumbnail"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/file/", views.original, name="original"),
]
