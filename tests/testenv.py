"""Loaded by pytest before Django (`-p tests.testenv` in pyproject.toml): points the settings at the
real local services and at a small OpenCLIP checkpoint with random weights made here, once.

The checkpoint goes through the same path as a user's local checkpoint file (CLIP_PRETRAINED=path),
so tests exercise the real loading code without downloading anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data"
CACHE = Path(os.environ.get("TEST_CACHE_DIR", ROOT / ".cache"))
TEST_MODEL = "ViT-S-32"
TEST_SEED = 1234
CHECKPOINT = CACHE / f"clip-{TEST_MODEL}-seed{TEST_SEED}.pt"
# A second checkpoint of the same model, for the model change (tests/ingestion/test_reindex.py).
SECOND_SEED = 4321
SECOND_CHECKPOINT = CACHE / f"clip-{TEST_MODEL}-seed{SECOND_SEED}.pt"
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output"))


def build_test_checkpoint(path: Path = CHECKPOINT, seed: int = TEST_SEED) -> Path:
    from tests.support.checkpoints import model_checkpoint

    return model_checkpoint(TEST_MODEL, seed, path)


_scratch = Path(tempfile.mkdtemp(prefix="imagesearch-tests-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["IMAGESEARCH_ENV_FILE"] = ""  # a developer's .env must not reach the tests
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imagesearch")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
# The test databases need no crash safety: commits (transactional tests commit and truncate after
# every test) do not wait for the disk. Children (workers, manage.py) inherit it.
os.environ.setdefault("PGOPTIONS", "-c synchronous_commit=off")
os.environ["TASKS_IN_PROCESS"] = "1"
os.environ["DATA_DIR"] = str(_scratch)
os.environ["CLIP_MODEL"] = TEST_MODEL
os.environ["CLIP_PRETRAINED"] = str(build_test_checkpoint())
build_test_checkpoint(SECOND_CHECKPOINT, SECOND_SEED)  # here, once, before pytest-xdist starts its workers
os.environ["CLIP_DEVICE"] = "cpu"
os.environ.pop("CHROMA_URL", None)
