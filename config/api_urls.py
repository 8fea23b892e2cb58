from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from ingestion.api import ImageViewSet, LabelVocabularyView
from search.api import DuplicatesView, SearchView, SimilarView
from tenants.people_api import InvitationViewSet, MemberViewSet
from webhooks.api import WebhookViewSet

app_name = "api"

router = SimpleRouter()
router.register("images", ImageViewSet, basename="image")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("members", MemberViewSet, basename="member")
router.register("invitations", InvitationViewSet, basename="invitation")

urlpatterns = [
    path("search/", SearchView.as_view(), name="search"),
    path("labels/", LabelVocabularyView.as_view(), name="labels"),
    path("images/<uuid:pk>/similar/", SimilarView.as_view(), name="image-similar"),
    path("images/<uuid:pk>/duplicates/", DuplicatesView.as_view(), name="image-duplicates"),
    *router.urls,
]
