"""Settings given to `make run` reach every command beside it without retyping them: `make run`
writes them to .env (config.envfile) and the settings read it; the environment still wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.testenv import ROOT

pytestmark = pytest.mark.slow  # Python processes, one a manage.py


def run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_settings_remembered_by_make_run_reach_a_later_command(tmp_path):
    env_file = tmp_path / ".env"
    base = {k: v for k, v in os.environ.items() if k not in {"CLIP_PRETRAINED", "CLIP_RANDOM_SEED"}}
    base["IMAGESEARCH_ENV_FILE"] = str(env_file)
    said = run({**base, "CLIP_PRETRAINED": "random", "CLIP_RANDOM_SEED": "7"}, "-m", "config.envfile")
    assert "Remembered CLIP_PRETRAINED=random" in said
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    show = (
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.CLIP_PRETRAINED, settings.CLIP_RANDOM_SEED)"
    )
    assert run(base, "-c", show).split() == ["random", "7"]
    assert run({**base, "CLIP_RANDOM_SEED": "9"}, "-c", show).split() == ["random", "9"]  # the environment wins
