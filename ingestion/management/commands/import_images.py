from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingestion.models import ImageAsset
from ingestion.services import asset_create, enqueue_embedding, parse_tags
from ingestion.validation import sha256_of
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Indexes a folder tree of existing pictures into a tenant. Files already indexed are skipped, "
        "files that are not acceptable images are listed with the reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--category", default="")
        parser.add_argument("--source", default="")
        parser.add_argument("--tags", default="", help="comma-separated tags for every image")
        parser.add_argument("--user", help="username recorded as the uploader")

    def handle(
        self,
        *args: Any,
        path: Path,
        tenant: str,
        category: str,
        source: str,
        tags: str,
        user: str | None,
        **options: Any,
    ) -> None:
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"There is no tenant {tenant!r}.")
        uploader = None
        if user:
            uploader = get_user_model().objects.filter(username=user).first()
            if uploader is None:
                raise CommandError(f"There is no user {user!r}.")
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        files = sorted(
            p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file() and not p.name.startswith(".")
        )
        imported, skipped, refused, pending = 0, 0, [], []
        progress = tqdm(files, unit="file", desc="Importing", disable=options.get("verbosity", 1) == 0, file=sys.stderr)
        for file_path in progress:
            try:
                with file_path.open("rb") as handle:
                    digest = sha256_of(handle)
                    if ImageAsset.objects.for_tenant(target).filter(sha256=digest).exists():
                        skipped += 1
                        continue
                    asset, created = asset_create(
                        tenant=target,
                        uploaded_by=uploader,
                        file=handle,
                        byte_size=file_path.stat().st_size,
                        filename=file_path.name,
                        category=category,
                        source=source,
                        tags=parse_tags(tags),
                    )
            except ValidationError as exc:
                refused.append((file_path, " ".join(exc.messages)))
            except OSError as exc:
                refused.append((file_path, f"cannot be read: {exc.strerror or exc}"))
            else:
                if created:
                    imported += 1
                    pending.append(asset.id)
                else:
                    skipped += 1
            if len(pending) >= settings.EMBED_BATCH_SIZE:
                enqueue_embedding(pending)
                pending = []
            progress.set_postfix(new=imported, skipped=skipped, refused=len(refused))
        enqueue_embedding(pending)
        progress.close()
        self.stdout.write(
            self.style.SUCCESS(f"Imported {imported} images into {target.slug}")
            + f"; skipped {skipped} already indexed; refused {len(refused)}."
        )
        for file_path, reason in refused:
            self.stdout.write(self.style.WARNING(f"  refused {file_path}: {reason}"))
