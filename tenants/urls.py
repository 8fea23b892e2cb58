from __future__ import annotations

from django.urls import path

from tenants import people_views, views

app_name = "tenants"

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:tenant_slug>/tokens/", views.tokens, name="tokens"),
    path("t/<slug:tenant_slug>/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("t/<slug:tenant_slug>/members/", people_views.members, name="members"),
    path("t/<slug:tenant_slug>/members/<int:member_id>/role/", people_views.member_role, name="member-role"),
    path("t/<slug:tenant_slug>/members/<int:member_id>/remove/", people_views.member_remove_view, name="member-remove"),
    path("t/<slug:tenant_slug>/invitations/", people_views.invite, name="invite"),
    path(
        "t/<slug:tenant_slug>/invitations/<int:invitation_id>/resend/",
        people_views.invitation_resend_view,
        name="invitation-resend",
    ),
    path(
        "t/<slug:tenant_slug>/invitations/<int:invitation_id>/withdraw/",
        people_views.invitation_withdraw_view,
        name="invitation-withdraw",
    ),
    path("t/<slug:tenant_slug>/audit/", people_views.audit_log, name="audit-log"),
]
