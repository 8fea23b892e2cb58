"""The benchmark scripts still run end to end (tiny sizes, the test model). Their figures are read
by people from full runs (README), never asserted here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.testenv import ROOT

pytestmark = pytest.mark.bench


def run(*args: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CHROMA_", "DATA_DIR", "CLIP_", "TASKS_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_ingest_benchmark_compares_both_pipelines():
    output = run("bench.ingest", "--count", "6", "--repeats", "1", "--model", "ViT-S-32")
    for label in ("baseline ", "ours ", "ratio ", "agreement ", "model "):
        assert any(line.startswith(label) for line in output.splitlines()), output


def test_the_query_benchmark_reports_latency_and_recall_per_size_class():
    output = run("bench.query", "--scale", "0.005", "--queries", "4", "--model", "ViT-S-32")
    assert output.count("recall@10") == 5, output


def test_a_short_load_run_ends_with_no_server_error_no_lost_image_and_no_cross_tenant_result():
    """The issue's bounded load test, shortened: concurrent uploads and searches from two tenants
    against gunicorn, a Celery worker, a Chroma server, PostgreSQL and Redis on loopback."""
    output = run("bench.load", "--duration", "15", "--clients", "4", "--tenants", "2", "--model", "ViT-S-32")
    for line in ("server errors 0", "lost images 0", "cross-tenant results 0 ", "vector mismatches 0"):
        assert line in output, output
    uploads = next(line for line in output.splitlines() if line.strip().startswith("upload "))
    assert int(uploads.split()[1]) > 0, output
    assert "requests/s" in output


def test_the_tenants_benchmark_reports_memory_latency_and_recall_per_size_class():
    output = run(
        *("bench.tenants", "--tenants", "30", "--largest", "300", "--sample", "3"),
        *("--api-runs", "2", "--model", "ViT-S-32"),
    )
    assert "server resident" in output and "ingest into a tenant of 300" in output, output
    classes = [line for line in output.splitlines() if "recall@10 mean" in line]
    assert len(classes) >= 2, output
    assert "every new vector found" in output
    assert "recall@10 for every tenant" in output and "upload to searchable through the API" in output
