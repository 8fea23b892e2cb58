"""The code has one floor per layer and one door to each outside system: config → search →
ingestion → webhooks → vectors and tenants. A module may import from its own app and the floors below it,
never from a floor above or a sibling; the outside systems are imported by their one door only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.testenv import ROOT

APPS = ("config", "search", "ingestion", "webhooks", "tenants", "vectors")
# What each app may import from the project (besides itself).
ALLOWED = {
    "config": {"search", "ingestion", "webhooks", "tenants", "vectors"},
    "search": {"ingestion", "webhooks", "tenants", "vectors"},
    "ingestion": {"webhooks", "tenants", "vectors"},
    "webhooks": {"tenants"},
    "tenants": set(),
    "vectors": set(),
}
DOORS = {
    "chromadb": {"vectors/index.py"},
    "torch": {"vectors/embedding/"},
    "open_clip": {"vectors/embedding/"},
    "redis": {"ingestion/broker.py"},
}


def imports(path: Path) -> set[str]:
    """Top-level packages a module imports, lazily inside functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules(app: str) -> list[Path]:
    return sorted(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("app", APPS)
def test_an_app_imports_only_from_the_floors_below_it(app):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imports(path) & (set(APPS) - ALLOWED[app] - {app})) for path in modules(app)
    }
    assert {path: names for path, names in wrong.items() if names} == {}


@pytest.mark.parametrize("package", sorted(DOORS))
def test_each_outside_system_is_imported_by_its_one_door_only(package):
    importers = {str(path.relative_to(ROOT)) for app in APPS for path in modules(app) if package in imports(path)}
    assert importers, f"nothing imports {package}: the door moved, update this test"
    assert {p for p in importers if not any(p.startswith(door) for door in DOORS[package])} == set()


def test_the_vectors_floor_has_no_models_and_no_views():
    names = {path.name for path in modules("vectors")}
    assert not names & {"models.py", "views.py", "api.py", "urls.py"}


def test_ruff_bans_the_outside_systems_everywhere_but_their_doors():
    config = (ROOT / "pyproject.toml").read_text()
    assert '"TID251"' in config
    for package in DOORS:
        assert f'"{package}".msg' in config
