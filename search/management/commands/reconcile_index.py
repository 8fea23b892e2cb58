from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.services import index_reconcile
from vectors.index import IndexLocked, IndexUnavailable


class Command(BaseCommand):
    help = (
        "Makes Chroma agree with the database: re-queues ready images whose vector is missing, removes "
        "vectors without an image or without the right tenant key, drops collections of deleted tenants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        try:
            report = index_reconcile(dry_run=dry_run)
        except IndexLocked as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc
        except IndexUnavailable as exc:
            raise CommandError(f"{exc}. Nothing was changed; run it again once Chroma is reachable.") from exc
        verb = "Would have" if dry_run else "Done:"
        self.stdout.write(
            f"{verb} re-queued {report.requeued} images missing from the index, removed {report.orphans_removed} "
            f"orphan vectors and {report.untagged_removed} vectors without the right tenant key, dropped "
            f"{report.collections_dropped} collections of deleted tenants."
        )
