"""The metadata filters a user may send (search, the image list), read by the database and, through
`vectors.layout`, by the index. Only these fields can be filtered on; the tenant condition is
added by the tenant-scoped queryset and by `vectors.index` alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from ingestion.models import ImageAsset
from vectors.layout import Where, filters_where


@dataclass(frozen=True)
class MetadataFilters:
    category: str = ""
    source: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    uploaded_from: date | None = None
    uploaded_to: date | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not (self.category or self.source or self.tags or self.labels or self.uploaded_from or self.uploaded_to)

    def _bounds(self) -> tuple[datetime | None, datetime | None]:
        start = timezone.make_aware(datetime.combine(self.uploaded_from, time.min)) if self.uploaded_from else None
        end = timezone.make_aware(datetime.combine(self.uploaded_to, time.max)) if self.uploaded_to else None
        return start, end

    def to_where(self) -> Where | None:
        start, end = self._bounds()
        return filters_where(
            category=self.category,
            source=self.source,
            tags=self.tags,
            labels=self.labels,
            uploaded_from=start,
            uploaded_to=end,
        )

    def apply(self, queryset: QuerySet[ImageAsset]) -> QuerySet[ImageAsset]:
        if self.category:
            queryset = queryset.filter(category=self.category)
        if self.source:
            queryset = queryset.filter(source=self.source)
        for tag in self.tags:
            queryset = queryset.filter(tag_index__contains=f",{tag},")
        for label in self.labels:
            queryset = queryset.filter(label_index__contains=f",{label},")
        start, end = self._bounds()
        if start:
            queryset = queryset.filter(created_at__gte=start)
        if end:
            queryset = queryset.filter(created_at__lte=end)
        return queryset
