"""A worker that dies, by a poison image or by a kill mid-batch, loses no image and leaves no
duplicate vector: the batch is handed out again or swept, and a poison image ends failed alone."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from ingestion.models import AssetStatus, ImageAsset
from tests.conftest import login
from tests.factories import png_chunk
from tests.faults.harness import (
    MAX_ATTEMPTS,
    MEMORY_LIMIT,
    WAIT,
    ids,
    picture,
    statuses,
    upload,
    wait_until_final,
)
from vectors import index

pytestmark = pytest.mark.stack


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of a few hundred kilobytes that takes 4 bytes a pixel to decode."""

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_a_poison_image_that_kills_its_worker_ends_failed_and_holds_back_no_other_image(
    faults_without_worker, acme, bob
):
    faults = faults_without_worker
    [poison, good1, broken, good2, good3] = upload(login(bob), acme, *(picture(seed) for seed in range(1, 6)))
    good = [good1, good2, good3]
    # Stored files that passed validation, yet whose decoding goes wrong in the worker: one needs
    # 400 MB to decode (10000 x 10000 pixels, UPLOAD_MAX_PIXELS), one is cut short. Both the original
    # and the derivative the worker reads first.
    for asset, damage in ((poison, lambda _: png_bomb(10_000, 10_000)), (broken, lambda data: data[:200])):
        for path in (Path(asset.file.path), Path(default_storage.path(asset.derivative_name(asset.derivative_side)))):
            path.write_bytes(damage(path.read_bytes()))

    faults.worker.oom_kills = 0
    faults.worker.start_under_memory_limit(MEMORY_LIMIT)
    everything = [*good, poison, broken]
    deadline = time.monotonic() + 3 * WAIT
    unsettled = [AssetStatus.PENDING, AssetStatus.PROCESSING]
    while ImageAsset.objects.filter(id__in=[a.id for a in everything], status__in=unsettled).exists():
        assert time.monotonic() < deadline, statuses(everything)
        if not faults.worker.running:
            faults.worker.start_under_memory_limit(MEMORY_LIMIT)  # as a supervisor would
        time.sleep(0.2)
    for asset in everything:
        asset.refresh_from_db()

    assert faults.worker.oom_kills == MAX_ATTEMPTS
    assert poison.status == AssetStatus.FAILED
    assert poison.failure_reason == f"Gave up after {MAX_ATTEMPTS} attempts: processing this image kept crashing."
    assert broken.status == AssetStatus.FAILED
    assert broken.failure_reason.startswith("The stored file could not be decoded")
    assert [a.status for a in good] == [AssetStatus.READY] * 3
    assert [a.attempts for a in good] == [2, 2, 2]  # the batch cut short by the crash, then alone
    # none of them waited for the poison's verdict
    assert all(a.embedded_at is not None and a.embedded_at < poison.updated_at for a in good)
    assert index.vector_ids(tenant=acme) == ids(good)


@pytest.mark.parametrize("recovery", ["redelivery", "sweep"])
def test_a_worker_killed_mid_batch_leaves_no_image_behind_and_no_duplicate_vector(
    faults, settings, acme, bob, recovery
):
    count = 32
    settings.EMBED_BATCH_SIZE = count  # one task holds them all
    assets = upload(login(bob), acme, *(picture(seed, size=(1024, 768)) for seed in range(count)))

    deadline = time.monotonic() + WAIT
    while not ImageAsset.objects.filter(id__in=[a.id for a in assets], status=AssetStatus.PROCESSING).exists():
        assert time.monotonic() < deadline, "the worker never claimed the batch"
        time.sleep(0.005)
    faults.worker.kill()
    at_kill = statuses(assets)
    assert at_kill == {AssetStatus.PROCESSING: count}, f"not killed mid-batch: {at_kill}"

    # Restarted as a supervisor would. With a short visibility timeout the broker hands the
    # unacknowledged batch to the new worker; with production's hour it would not for an hour, and
    # the periodic sweep queues the images left processing instead.
    if recovery == "redelivery":
        faults.worker.start()
        wait_until_final(assets)
    else:
        faults.worker.start(CELERY_VISIBILITY_TIMEOUT="3600")
        with faults.beat():
            wait_until_final(assets)
    assert {a.status for a in assets} == {AssetStatus.READY}, [(a.status, a.failure_reason) for a in assets]
    assert index.vector_ids(tenant=acme) == ids(assets)
    assert index.count_vectors(tenant=acme) == count
    # one attempt cut short by the kill, one that finished
    assert {a.attempts for a in assets} == {2}
