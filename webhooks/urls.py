from __future__ import annotations

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("t/<slug:tenant_slug>/webhooks/", views.webhooks, name="list"),
    path("t/<slug:tenant_slug>/webhooks/<uuid:endpoint_id>/", views.detail, name="detail"),
    path("t/<slug:tenant_slug>/webhooks/<uuid:endpoint_id>/toggle/", views.toggle, name="toggle"),
    path("t/<slug:tenant_slug>/webhooks/<uuid:endpoint_id>/delete/", views.delete, name="delete"),
]
