"""The Chroma server killed without a shutdown and started again: every ready vector is kept and
searchable from a fresh process, and the work queued meanwhile completes once it is back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingestion.models import AssetStatus
from tests.conftest import login
from tests.faults.harness import WAIT, ids, picture, statuses, upload, wait_until_final
from tests.support.processes import wait_until
from tests.testenv import OUTPUT
from vectors import index

pytestmark = pytest.mark.stack

FRESH_CHECK = """
import json
from django.core.management import call_command
from ingestion.models import AssetStatus, ImageAsset
from vectors import index
from tenants.models import Tenant

found = {}
for tenant in Tenant.objects.all():
    rows = ImageAsset.objects.for_tenant(tenant).filter(status=AssetStatus.READY)
    ready = [str(i) for i in rows.values_list("id", flat=True)]
    vectors = {i: v.tolist() for i, v in index.fetch_vectors(tenant=tenant, ids=ready).items()}
    nearest = {i: [h.id for h in index.query_vectors(tenant=tenant, embedding=v, limit=1)] for i, v in vectors.items()}
    found[tenant.slug] = {"ready": ready, "vectors": vectors, "nearest": nearest}
print("FOUND " + json.dumps(found))
call_command("reconcile_index", dry_run=True)
"""


def test_chroma_killed_and_restarted_keeps_every_ready_vector_and_queued_work_completes(faults, acme, bob):
    first = upload(login(bob), acme, picture(21), picture(22), picture(23))
    wait_until_final(first)
    assert [a.status for a in first] == [AssetStatus.READY] * 3
    before = index.fetch_vectors(tenant=acme, ids=sorted(ids(first)))

    log = OUTPUT / "faults-celery-worker.log"
    logged = log.stat().st_size
    faults.chroma.kill()  # no shutdown: whatever Chroma had not written is lost
    second = upload(login(bob), acme, picture(24), picture(25))
    wait_until(lambda: b"retry: Retry in" in log.read_bytes()[logged:], WAIT, "the worker retrying without Chroma")
    assert set(statuses(second)) <= {AssetStatus.PENDING, AssetStatus.PROCESSING}  # given back, not failed
    faults.chroma.start()  # same directory, same port
    wait_until_final(second)
    assert [a.status for a in second] == [AssetStatus.READY] * 2
    assert all(a.failure_reason == "" for a in second)

    output = faults.run_fresh(FRESH_CHECK)
    found = json.loads(output.split("FOUND ", 1)[1].splitlines()[0])["acme"]
    assert set(found["ready"]) == ids(first) | ids(second)
    assert set(found["vectors"]) == set(found["ready"])
    assert found["nearest"] == {asset_id: [asset_id] for asset_id in found["ready"]}  # searchable, not just stored
    for asset_id, vector in before.items():
        assert np.allclose(found["vectors"][asset_id], vector, atol=1e-6)
    assert "Would have re-queued 0 images missing from the index, removed 0 orphan vectors" in output
