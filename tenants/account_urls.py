"""A person's own pages under /accounts/ (the login and logout are in config.urls): their tenants,
password change and reset (Django's views, names as Django's views expect them), and the
invitation links."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from tenants import auth_views as views

urlpatterns = [
    path("", views.account, name="account"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", views.RateLimitedPasswordResetView.as_view(), name="password_reset"),
    path("password/reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invitations/<slug:invitation_token>/", views.invitation_accept_view, name="invitation-accept"),
]
