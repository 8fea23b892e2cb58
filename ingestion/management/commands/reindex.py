from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingestion.services.reindex import (
    ReindexRefused,
    ReindexStatus,
    reindex_cancel,
    reindex_dispatch,
    reindex_drop_old,
    reindex_run,
    reindex_start,
    reindex_status,
)
from ingestion.spaces import describe_settings_model
from vectors.embedding import EmbeddingModelUnavailable
from vectors.index import IndexLocked, IndexUnavailable


class Command(BaseCommand):
    help = (
        "Changes the model without downtime: builds the new model's vectors for every tenant in the "
        "background while search answers from the active one, then switches in one step. "
        "`reindex --model NAME --pretrained TAG_OR_PATH` starts (or resumes) a build; `reindex` resumes it; "
        "`--status` shows progress per tenant; `--drop-old` removes the vectors of models switched away from; "
        "`--cancel` abandons a build."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="OpenCLIP model name, e.g. ViT-B-16")
        parser.add_argument("--pretrained", help="pretrained tag (e.g. laion2b_s34b_b88k) or checkpoint path")
        parser.add_argument("--status", action="store_true", help="show the models and the build's progress")
        parser.add_argument("--drop-old", action="store_true", help="remove the vectors of retired models")
        parser.add_argument("--cancel", action="store_true", help="abandon the build; the active model stays")
        parser.add_argument("--wait", action="store_true", help="where the build runs in the background, follow it")

    def handle(
        self,
        *args: Any,
        model: str | None,
        pretrained: str | None,
        status: bool,
        drop_old: bool,
        cancel: bool,
        wait: bool,
        **options: Any,
    ) -> None:
        if sum([bool(model or pretrained), status, drop_old, cancel]) > 1:
            raise CommandError("Give one of --model/--pretrained, --status, --drop-old or --cancel.")
        try:
            if status:
                self._print_status(reindex_status())
            elif drop_old:
                dropped, waiting = reindex_drop_old()
                names = ", ".join(str(space) for space in dropped)
                self.stdout.write(f"Removed the vectors of {names}." if dropped else "No retired model to remove.")
                for space in waiting:
                    self.stdout.write(
                        f"{space} left service a moment ago; running processes may still read it. Run this again "
                        "in a few seconds."
                    )
            elif cancel:
                self._cancel()
            else:
                self._build(model, pretrained, wait=wait)
        except IndexLocked as exc:
            raise CommandError(
                f"{exc} For --drop-old and --cancel, stop the service, run this, and start it again "
                "(nothing is lost: what is left undone is done by the next --drop-old)."
            ) from exc
        except IndexUnavailable as exc:
            raise CommandError(f"{exc} Nothing was lost: run the same command again once Chroma answers.") from exc

    def _cancel(self) -> None:
        try:
            space = reindex_cancel()
        except IndexUnavailable as exc:
            raise CommandError(
                f"The build is cancelled, but its vectors could not be removed now ({exc}). "
                "Run `reindex --drop-old` once Chroma answers."
            ) from exc
        self.stdout.write(f"Cancelled the build of {space}." if space else "No model is being built.")

    def _build(self, model: str | None, pretrained: str | None, *, wait: bool) -> None:
        if bool(model) != bool(pretrained):
            raise CommandError("Give both --model and --pretrained (a tag such as laion2b_s34b_b79k, or a path).")
        if model and pretrained:
            try:
                space, created = reindex_start(model=model, pretrained=pretrained)
            except (ReindexRefused, EmbeddingModelUnavailable) as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{'Building' if created else 'Resuming the build of'} {space}.")
        elif reindex_status().building is None:
            self.stdout.write("No model is being built. Start one with --model NAME --pretrained TAG_OR_PATH.")
            return
        where = reindex_dispatch()
        if where:
            self.stdout.write(f"Search keeps answering from the active model; {where}. Follow it with --status.")
            if wait:
                self._follow()
            return
        self._run_here()

    def _run_here(self) -> None:
        status = reindex_status()
        with tqdm(total=status.total, initial=status.done, unit="img", disable=None) as bar:

            def advance() -> None:
                now = reindex_status()
                bar.total = max(bar.total or 0, now.total)
                bar.update(now.done - bar.n)

            space = reindex_run(on_step=advance)
        self.stdout.write(self.style.SUCCESS(f"Done: {space} is the active model. Old vectors stay until --drop-old."))

    def _follow(self) -> None:
        while (status := reindex_status()).building is not None:
            if status.building.error:
                self.stdout.write(f"Waiting; the last step stopped: {status.building.error}")
            self.stdout.write(f"{status.done}/{status.total} images")
            time.sleep(2)
        self.stdout.write(self.style.SUCCESS(f"Done: {status.active} is the active model."))

    def _print_status(self, status: ReindexStatus) -> None:
        self.stdout.write(f"Active: {status.active or 'the configured model (CLIP_MODEL, CLIP_PRETRAINED)'}")
        if unused := describe_settings_model():
            self.stdout.write(f"  ({unused}: the database names the active model)")
        for space in status.retired:
            self.stdout.write(f"Retired (vectors kept until --drop-old): {space}")
        if status.building is None:
            self.stdout.write("No model is being built.")
            return
        building = status.building
        self.stdout.write(f"Building: {building}, {status.done}/{status.total} images")
        if building.error:
            self.stdout.write(f"  the last step stopped: {building.error} (it resumes; `reindex` runs it here)")
        for row in status.tenants:
            state = "complete" if row.finished else f"{row.percent}%"
            self.stdout.write(f"  {row.tenant}: {row.done}/{row.total} {state}")
