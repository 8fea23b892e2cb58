"""Refuses a file as soon as it passes UPLOAD_MAX_BYTES, while it is still arriving: the rest of it
is never written anywhere, and the other files of the same request go on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat


@dataclass(frozen=True)
class EarlyRefusal:
    filename: str
    reason: str
    bytes_read: int


def early_refusals(request: HttpRequest) -> list[EarlyRefusal]:
    return list(getattr(request, "_upload_refusals", []))


class SizeLimitUploadHandler(FileUploadHandler):
    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            refusals = getattr(self.request, "_upload_refusals", [])
            refusals.append(
                EarlyRefusal(
                    filename=str(self.file_name or ""),
                    reason=f"The file is larger than the limit of {filesizeformat(settings.UPLOAD_MAX_BYTES)}.",
                    bytes_read=self.received,
                )
            )
            self.request._upload_refusals = refusals  # type: ignore[union-attr]
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the file
