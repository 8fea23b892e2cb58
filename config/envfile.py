"""The local `.env` file: settings chosen once for `make run` (weights, data folder...) that every
command beside it (`manage.py import_images`, `check_model`...) then reads without retyping them.
Settings read it at start (`config.settings`); a variable set in the environment always wins.

    python -m config.envfile CLIP_PRETRAINED DATA_DIR ...   # remembers those set in the environment now
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import dotenv_values, set_key

ROOT = Path(__file__).resolve().parent.parent
# The settings the README's commands share in the single-process default.
REMEMBERED = (
    "DATA_DIR",
    "CLIP_MODEL",
    "CLIP_PRETRAINED",
    "CLIP_DEVICE",
    "CLIP_PRECISION",
    "CLIP_RANDOM_SEED",
    "DJANGO_DEBUG",
)


def env_file() -> Path | None:
    """`IMAGESEARCH_ENV_FILE` names another file; set to empty it turns the file off (the tests do)."""
    named = os.environ.get("IMAGESEARCH_ENV_FILE")
    if named is None:
        return ROOT / ".env"
    return Path(named) if named else None


def remember(names: tuple[str, ...] = REMEMBERED) -> dict[str, str]:
    """Writes the named variables that are set in the environment to the file; returns what changed."""
    path = env_file()
    if path is None:
        return {}
    known = dotenv_values(path) if path.is_file() else {}
    changed = {}
    for name in names:
        value = os.environ.get(name)
        if value is not None and known.get(name) != value:
            path.touch(mode=0o600, exist_ok=True)
            set_key(path, name, value, quote_mode="always")
            changed[name] = value
    return changed


if __name__ == "__main__":
    for name, value in remember(tuple(sys.argv[1:]) or REMEMBERED).items():
        print(f"Remembered {name}={value} in {env_file()} for the commands beside `make run`.")
