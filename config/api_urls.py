from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from ingestion.api import ImageViewSet
from search.api import SearchView, SimilarView

app_name = "api"

router = SimpleRouter()
router.register("images", ImageViewSet, basename="image")

urlpatterns = [
    path("search/", SearchView.as_view(), name="search"),
    path("images/<uuid:pk>/similar/", SimilarView.as_view(), name="image-similar"),
    *router.urls,
]
