"""Weights that cannot be had stop the processes that need them, with the setting to change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.testenv import ROOT

pytestmark = pytest.mark.slow  # a worker process and manage.py, each importing the model's stack

VENV_BIN = os.path.dirname(sys.executable)


def env_with(**overrides: str) -> dict[str, str]:
    return {**os.environ, "TASKS_IN_PROCESS": "0", "CHROMA_URL": "http://127.0.0.1:9", **overrides}


def test_a_worker_without_weights_stops_and_says_what_to_set():
    result = subprocess.run(
        [os.path.join(VENV_BIN, "celery"), "-A", "config", "worker", "--pool=solo", "-Q", "nothing"],
        cwd=ROOT,
        env=env_with(CLIP_PRETRAINED="/nonexistent/weights.pt"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "The worker cannot start: CLIP_PRETRAINED='/nonexistent/weights.pt'" in result.stderr


def test_check_model_fails_with_the_setting_to_change():
    result = subprocess.run(
        [sys.executable, "manage.py", "check_model"],
        cwd=ROOT,
        env=env_with(CLIP_PRETRAINED="no-such-tag"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "CLIP_PRETRAINED to the path of a local checkpoint file" in result.stderr
