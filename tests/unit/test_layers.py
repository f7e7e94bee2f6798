"""The package layers: ``eventlog`` imports nothing of ours, ``projections``
only ``eventlog``, ``engine`` never ``api`` or ``scripts`` (the composition
root, ``api.cli``/``api.config``, sits above the engine)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"eventlog", "projections", "engine", "api", "scripts", "bench", "tests"}
ALLOWED = {
    "eventlog": {"eventlog"},
    "projections": {"eventlog", "projections"},
    "engine": {"eventlog", "projections", "engine"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of ours that one module imports (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & OURS
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package: str) -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in sorted((ROOT / package).glob("*.py"))
        if (bad := imported_packages(path) - ALLOWED[package])
    }
    assert offending == {}


def test_the_probe_sees_imports() -> None:
    # The check above would pass vacuously if the probe found nothing.
    assert imported_packages(ROOT / "api" / "cli.py") >= {"eventlog"}
    assert "engine" in imported_packages(ROOT / "api" / "app.py")
