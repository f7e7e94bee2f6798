"""The layering, checked: every import of ours points down the layers.

    eventlog  <-  projections  <-  engine  <-  api  <-  scripts, bench, examples
                                                        (tests may import all)

Read with ``ast``, so an import inside a function counts too. Database drivers
and SQL live only in ``eventlog/`` (tests reach a database only through
``tests/storage.py``).

The whole tree is parsed in a child interpreter: on CPython 3.11 before 3.11.8
the AST converter keeps its recursion count per interpreter, not per thread, so
an ``ast.parse`` in the test process can fail with "AST constructor recursion
depth mismatch" while a leftover thread of an earlier test formats a traceback
(3.11's tracebacks parse source lines to place their carets).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("eventlog", "projections", "engine", "api", "scripts", "bench", "tests")
# What each package may import of ours (besides itself).
ALLOWED: dict[str, set[str]] = {
    "eventlog": set(),
    "projections": {"eventlog"},
    "engine": {"eventlog", "projections"},
    "api": {"eventlog", "projections", "engine"},
    "scripts": {"eventlog", "projections", "engine", "api"},
    "bench": {"eventlog", "projections", "engine", "api", "scripts"},
    "examples": set(),
    "tests": set(OURS),
}
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg"}
DRIVER_HOMES = ("eventlog/", "tests/storage.py")
SQL = re.compile(
    r"\b(SELECT\s[\s\S]+\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET"
    r"|CREATE\s+(TABLE|INDEX|TRIGGER|FUNCTION)|DROP\s+(TABLE|TRIGGER|SCHEMA))\b"
)


def python_files() -> Iterator[Path]:
    for package in ALLOWED:
        yield from sorted((ROOT / package).rglob("*.py"))


def imported(tree: ast.AST, path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every import in the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the package
                continue
            yield node.lineno, (node.module or "").split(".")[0]


def violations() -> Iterator[str]:
    for path in python_files():
        rel = path.relative_to(ROOT).as_posix()
        package = rel.split("/")[0]
        tree = ast.parse(path.read_text(), str(path))
        for line, module in imported(tree, path):
            if module in OURS and module != package and module not in ALLOWED[package]:
                yield f"{rel}:{line}: {package}/ imports {module}/"
            if module in DRIVERS and not rel.startswith(DRIVER_HOMES):
                yield f"{rel}:{line}: imports the database driver {module}"
        if rel.startswith(DRIVER_HOMES) or rel == "tests/unit/test_layers.py":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.search(node.value)
            ):
                yield f"{rel}:{node.lineno}: SQL outside eventlog/"


def test_imports_point_down_the_layers() -> None:
    child = subprocess.run(
        [sys.executable, __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode in (0, 1), child.stderr
    found = child.stdout.splitlines()
    assert child.returncode == 0 and not found, "layering violations:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("engine", "from api.app import Server\n", "engine/ imports api/"),
        ("eventlog", "def f():\n    import engine.core\n", "eventlog/ imports engine/"),
        ("projections", "import engine\n", "projections/ imports engine/"),
        ("bench", "from tests.harness import Http\n", "bench/ imports tests/"),
        ("api", "import sqlite3\n", "database driver sqlite3"),
        ("engine", 'Q = "SELECT x FROM log"\n', "SQL outside eventlog/"),
    ],
)
def test_the_check_catches_each_kind_of_violation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    package: str,
    source: str,
    expected: str,
) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "bad.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    found = list(violations())
    assert any(expected in line for line in found), found


if __name__ == "__main__":
    problems = list(violations())
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
