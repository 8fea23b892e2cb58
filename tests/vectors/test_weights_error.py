"""Weights that cannot be downloaded stop the service with one clear message naming the setting to
change, at once, not after a minute of the download client's retries and seventy lines of noise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.processes import free_port
from tests.testenv import ROOT

pytestmark = pytest.mark.slow  # a process that imports torch and open_clip


def test_missing_weights_are_one_clear_message_without_retry_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIP_", "DATABASE_URL"))}
    # Hugging Face out of reach, as without internet: nothing listens on this port.
    env |= {
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "HF_HOME": str(tmp_path / "hf"),
        "DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check_model"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(output) <= 2, output  # "Loading …" and the error
    assert "CLIP_PRETRAINED='laion2b_s34b_b79k'" in output[-1] and "cannot be reached" in output[-1]
    assert not any("thrown while requesting" in line or "Traceback" in line for line in output)
