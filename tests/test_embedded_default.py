"""The single-process default that `make run` starts: SQLite, embedded Chroma, tasks in-process,
no Redis, no Chroma server. Driven as a user drives it, through manage.py in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.factories import image_bytes
from tests.support.processes import answers, free_port, wait_until
from tests.testenv import ROOT, SAMPLES

pytestmark = pytest.mark.slow  # five processes that each load the model, one of them a server


@pytest.fixture
def embedded_env(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DATABASE_URL", "REDIS_URL", "CHROMA_URL", "TASKS_IN_PROCESS", "EMBED_RUNNER", "DATA_DIR", "MEDIA_ROOT"}
    }
    env["DATA_DIR"] = str(tmp_path / "var")
    return env


def manage(env, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_embedded_default_imports_embeds_and_serves(embedded_env, tmp_path):
    manage(embedded_env, "migrate", "--noinput")
    assert "ready on cpu" in manage(embedded_env, "check_model")
    login_line = manage(embedded_env, "bootstrap_demo")
    username, password = re.search(r"log in as (\S+) / (\S+)", login_line).groups()
    imported = manage(embedded_env, "import_images", str(SAMPLES), "--tenant", "demo")
    assert "Imported 3 images into demo" in imported
    counted = manage(
        embedded_env,
        "shell",
        "-c",
        "from vectors import index; from tenants.models import Tenant; from ingestion.models import ImageAsset;"
        "t = Tenant.objects.get(slug='demo');"
        "print(index.count_vectors(tenant=t), sorted(set(ImageAsset.objects.values_list('status', flat=True))))",
    )
    assert counted.strip().splitlines()[-1] == "3 ['ready']"
    assert (tmp_path / "var" / "db.sqlite3").exists()
    assert (tmp_path / "var" / "chroma").is_dir()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=embedded_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{base}/accounts/login/", 200), 60, "runserver", processes=[server])
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            form = browser.get("/accounts/login/")
            token = browser.cookies["csrftoken"]
            assert form.status_code == 200
            page = browser.post(
                "/accounts/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": token}
            )
            assert page.url.path == "/t/demo/"
            assert "3</strong>ready" in page.text.replace("\n", "")

        # The README's next steps while the service runs: a restart of `make run` keeps the login, and
        # importing a folder hands the new images to the running service, which embeds them; searching
        # them (by text with filters, and more like this) answers, never a 500.
        assert f"log in as {username} / {password}" in manage(embedded_env, "bootstrap_demo")
        second = subprocess.run(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, env=embedded_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode != 0 and "is in use by process" in second.stdout + second.stderr  # refused at start
        key = manage(embedded_env, "create_api_token", "--tenant", "demo", "--user", username).strip().splitlines()[-1]
        folder = tmp_path / "more"
        folder.mkdir()
        for i, colour in enumerate([(20, 200, 40), (30, 40, 220)]):
            (folder / f"new-{i}.png").write_bytes(image_bytes("PNG", (96, 64), colour))
        handed = manage(embedded_env, "import_images", str(folder), "--tenant", "demo", "--category", "imported")
        assert "Imported 2 images into demo" in handed
        assert "The running service embeds the new images" in handed
        with httpx.Client(base_url=base, headers={"Authorization": f"Token {key}"}) as client:

            def imported_ready() -> bool:
                listed = client.get("/api/v1/images/", params={"category": "imported", "status": "ready"})
                return listed.status_code == 200 and listed.json()["count"] == 2

            wait_until(imported_ready, 60, "the running service embedding the imported images", processes=[server])
            found = client.get("/api/v1/search/", params={"q": "a green picture", "category": "imported"})
            assert found.status_code == 200
            ids = [hit["id"] for hit in found.json()["results"]]
            assert len(ids) == 2
            similar = client.get(f"/api/v1/images/{ids[0]}/similar/", params={"category": "imported"})
            assert similar.status_code == 200
            assert [hit["id"] for hit in similar.json()["results"]] == [ids[1]]
            assert client.get("/api/v1/search/", params={"q": "a dog"}).json()["count"] == 5
    finally:
        server.terminate()
        server.wait(10)
