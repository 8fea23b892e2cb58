"""docker-compose.yml is for users (no Docker engine runs here): the compose client validates it,
and its structure is checked against what the service needs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.testenv import ROOT


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def load(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)  # noqa: S506 (SafeLoader subclass)


def test_the_compose_client_accepts_the_file():
    client = shutil.which("docker-compose")
    if client is None:
        pytest.fail("docker-compose is missing: `make system-deps` installs Debian's client")
    result = subprocess.run(
        [client, "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_it_describes_the_whole_stack():
    services = load("docker-compose.yml")["services"]
    assert {"web", "proxy", "worker", "beat", "migrate", "chroma", "postgres", "redis", "minio", "bucket"} <= set(
        services
    )
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["CHROMA_URL"] == "http://chroma:8000"
        assert env["REDIS_URL"].startswith("redis://redis")
        assert env["DATABASE_URL"].startswith("postgres://")
        assert (env["S3_BUCKET"], env["S3_ENDPOINT_URL"]) == ("imagesearch", "http://minio:9000")
    assert services["chroma"]["command"] == ["chroma", "run", "/app/config/chroma.yaml"]  # the project's pool
    assert services["worker"]["command"][:3] == ["celery", "-A", "config"]


def test_the_worker_reserves_a_gpu_and_the_cpu_override_drops_it():
    worker = load("docker-compose.yml")["services"]["worker"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert load("docker-compose.cpu.yml")["services"]["worker"]["deploy"] is None


def test_tasks_are_sized_for_a_gpu_worker_and_for_a_cpu_one_with_the_override():
    gpu, cpu = load("docker-compose.yml")["services"], load("docker-compose.cpu.yml")["services"]
    for name in ("web", "worker", "beat"):  # the web process and the sweep chunk what the worker gets
        assert gpu[name]["environment"]["EMBED_BATCH_SIZE"] == "${EMBED_BATCH_SIZE:-256}"
        assert cpu[name]["environment"]["EMBED_BATCH_SIZE"] == "${EMBED_BATCH_SIZE:-32}"
    # Debian's compose client (v1) cannot merge the override: it predates `!reset`.


def test_web_and_workers_share_no_volume_and_scale_out_with_the_profile():
    compose = load("docker-compose.yml")
    services = compose["services"]
    mounts = {name: {v.split(":")[0] for v in services[name].get("volumes", [])} for name in ("web", "worker", "beat")}
    assert mounts == {"web": {"web-models"}, "worker": {"worker-models"}, "beat": set()}  # each its own cache
    assert services["web"]["deploy"]["replicas"] == "${WEB_REPLICAS:-1}"
    assert services["worker"]["deploy"]["replicas"] == "${WORKER_REPLICAS:-1}"
    profile = dict(
        line.split("=", 1)
        for line in (ROOT / "compose" / "scale.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert profile == {"WEB_REPLICAS": "2", "WORKER_REPLICAS": "4"}


def test_chroma_and_the_stores_sit_on_an_internal_network_with_no_published_port():
    compose = load("docker-compose.yml")
    assert compose["networks"]["backend"]["internal"] is True
    services = compose["services"]
    for name in ("chroma", "postgres", "redis", "minio"):
        assert services[name]["networks"] == ["backend"] and "ports" not in services[name]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    assert services["proxy"]["networks"] == ["public"]


def test_the_compose_client_accepts_the_scale_out_profile():
    client = shutil.which("docker-compose")
    if client is None:
        pytest.fail("docker-compose is missing: `make system-deps` installs Debian's client")
    result = subprocess.run(
        [client, "--env-file", "compose/scale.env", "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    assert (rendered["web"]["deploy"]["replicas"], rendered["worker"]["deploy"]["replicas"]) == (2, 4)
