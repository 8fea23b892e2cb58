from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingestion.forms import UploadForm
from ingestion.models import AssetStatus, ImageAsset
from ingestion.services.pipeline import assets_embed_next_batch
from ingestion.services.requeue import assets_requeue
from ingestion.services.upload import assets_upload
from ingestion.validation import sha256_of
from tenants.audit import audit_record
from tenants.models import AuditAction, Tenant
from vectors import index
from vectors.embedding import EmbeddingModelUnavailable
from vectors.index import IndexLocked, IndexUnavailable


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
        form = UploadForm({"category": category, "source": source, "tags": tags}, file_field=None)
        if not form.is_valid():
            raise CommandError(
                "; ".join(f"--{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items())
            )
        imported, skipped, refused, unfinished = 0, 0, [], []
        progress = tqdm(
            total=len(files), unit="file", desc="Importing", disable=options.get("verbosity", 1) == 0, file=sys.stderr
        )
        # Files go to the upload service in chunks of one embedding batch, so the worker gets full batches.
        for start in range(0, len(files), settings.EMBED_BATCH_SIZE):
            chunk, handles = files[start : start + settings.EMBED_BATCH_SIZE], []
            with contextlib.ExitStack() as stack:
                for file_path in chunk:
                    try:
                        handle = stack.enter_context(file_path.open("rb"))
                        known = ImageAsset.objects.for_tenant(target).filter(sha256=sha256_of(handle)).first()
                    except OSError as exc:
                        refused.append((file_path, f"cannot be read: {exc.strerror or exc}"))
                        continue
                    if known is None:
                        handles.append((file_path, File(handle, name=file_path.name)))
                    elif known.status == AssetStatus.READY:
                        skipped += 1
                    else:  # stored before, but not searchable yet: give it another go
                        unfinished.append(known)
                outcomes = assets_upload(
                    tenant=target,
                    uploaded_by=uploader,
                    files=[file for _, file in handles],
                    category=form.cleaned_data["category"],
                    source=form.cleaned_data["source"],
                    tags=form.cleaned_data["tags"],
                )
            for (file_path, _), outcome in zip(handles, outcomes, strict=True):
                if outcome.error:
                    refused.append((file_path, outcome.error))
                elif outcome.duplicate:
                    skipped += 1
                else:
                    imported += 1
            progress.update(len(chunk))
            progress.set_postfix(new=imported, skipped=skipped, refused=len(refused))
        progress.close()
        if imported or skipped or refused:
            audit_record(
                tenant=target, actor_user=uploader, action=AuditAction.IMAGES_UPLOADED, target=str(path),
                detail={"count": imported + skipped + len(refused), "stored": imported, "duplicates": skipped,
                        "refused": len(refused), "via": "import_images"},
            )  # fmt: skip
        requeued = assets_requeue(assets=unfinished)
        self.stdout.write(
            self.style.SUCCESS(f"Imported {imported} images into {target.slug}")
            + f"; skipped {skipped} already indexed"
            + (f"; queued {requeued} again that were not searchable yet" if requeued else "")
            + f"; refused {len(refused)}."
        )
        for file_path, reason in refused:
            self.stdout.write(self.style.WARNING(f"  refused {file_path}: {reason}"))
        if settings.EMBED_RUNNER == "thread" and (imported or requeued):
            self._embed_or_hand_over(verbosity=options.get("verbosity", 1))

    def _embed_or_hand_over(self, *, verbosity: int) -> None:
        """In the single-process default the running service embeds what this command stored; with no
        service running, this command embeds the images itself (it may then open the index)."""
        try:
            index.check_available()
        except IndexLocked:
            self.stdout.write(
                "The running service embeds the new images in the background; its pages show their progress."
            )
            return
        except IndexUnavailable as exc:
            raise CommandError(f"The images are stored and stay pending until this is fixed: {exc}") from exc
        pending = ImageAsset.objects.filter(status=AssetStatus.PENDING).count()
        bar = tqdm(total=pending, unit="image", desc="Embedding", disable=verbosity == 0, file=sys.stderr)
        try:
            while claimed := assets_embed_next_batch().claimed:
                bar.update(claimed)
        except (EmbeddingModelUnavailable, IndexUnavailable) as exc:
            bar.close()
            raise CommandError(f"The images are stored and stay pending until this is fixed: {exc}") from exc
        bar.close()
        self.stdout.write(self.style.SUCCESS("Embedded: the images are searchable."))
