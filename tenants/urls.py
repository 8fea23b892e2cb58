from __future__ import annotations

from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:tenant_slug>/tokens/", views.tokens, name="tokens"),
    path("t/<slug:tenant_slug>/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
