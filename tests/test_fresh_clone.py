"""The repository carries everything its tests need: the committed HEAD, cloned into an empty folder
with nothing beside it, passes the fast tier there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.testenv import CACHE, ROOT

pytestmark = pytest.mark.slow


def test_a_fresh_clone_passes_the_fast_tier(tmp_path):
    clone = tmp_path / "app"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert list(tmp_path.iterdir()) == [clone]  # no sibling folder to read from

    database = urlsplit(os.environ["DATABASE_URL"])
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "TEST_OUTPUT_DIR", "PYTEST_ADDOPTS"}}
    # Its own test database (pytest-django's `test_<name>_clone`), beside the one this run holds.
    env["DATABASE_URL"] = database._replace(path=f"{database.path}_clone").geturl()
    env["TEST_CACHE_DIR"] = str(CACHE)  # the random-weight checkpoint is built once, not per clone
    result = subprocess.run(
        # As `make test-fast` runs it (two workers: the fast tier starts no shared stack); serial, it
        # took 8 of its 10 minutes on a slow 2-core machine.
        [sys.executable, "-m", "pytest", "--fast", "-n", "2", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"failed|error", summary), summary
