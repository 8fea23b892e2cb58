from __future__ import annotations

from django.urls import path

from search import views

app_name = "search"

urlpatterns = [
    path("t/<slug:tenant_slug>/search/", views.search, name="search"),
    path("t/<slug:tenant_slug>/duplicates/", views.duplicates, name="duplicates"),
    path("t/<slug:tenant_slug>/duplicates/keep/", views.duplicates_keep, name="duplicates-keep"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/", views.detail, name="detail"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/similar/", views.similar, name="similar"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/delete/", views.delete, name="delete"),
    path("t/<slug:tenant_slug>/images/<uuid:asset_id>/edit/", views.edit, name="edit"),
]
