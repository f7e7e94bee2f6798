"""The ``iiilog`` command and ``scripts/replay.py`` as a user runs them: real
processes, their exit status and what they print."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

ENV = {
    **os.environ,
    "IIILOG_WORKER_PORT": "0",
    "IIILOG_HTTP_PORT": "0",
    "IIILOG_STREAM_PORT": "0",
}


def iiilog(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_config_is_refused_by_module_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "workers:\n  - name: iii-http\n    config: {cors: {allowed_origins: '*'}}\n"
    )
    out = iiilog("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "config error: iii-http: cors.allowed_origins: Input should be a valid list"
    )
    assert "Traceback" not in out.stderr
    config.write_text("workers:\n  - name: iii-http\n    config: {prot: 1}\n")
    out = iiilog("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2
    assert "config error: iii-http: unknown key 'prot'" in out.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was opened


def read_only_data_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    """An empty data dir the engine cannot write, and the command prefix that
    makes it so: permissions for a normal user; for root (who ignores them) a
    read-only tmpfs mounted over it in a private mount namespace."""
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() != 0:
        data.chmod(0o555)
        return data, []
    probe = (
        subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {data}"],
            capture_output=True,
        )
        if shutil.which("unshare")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root without unshare/mount: no read-only dir")
    mount = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
    return data, ["unshare", "-m", "sh", "-c", mount, str(data)]


def test_read_only_data_dir_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    data, prefix = read_only_data_dir(tmp_path)
    out = subprocess.run(
        [*prefix, sys.executable, "-m", "api", "serve", "--data-dir", str(data)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("cannot start: ") and str(data) in last, out.stderr


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "api", "status"],
        [sys.executable, "-m", "api", "status", "--json"],
        [sys.executable, "-m", "api", "replay", "--quiet"],
        [sys.executable, "-m", "api", "replay", "--quiet", "--apply"],
        [sys.executable, "scripts/replay.py", "--quiet"],
    ],
    ids=["status", "status-json", "iiilog-replay", "replay-apply", "replay-script"],
)
def test_mistyped_data_dir_is_named_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "dtaa"
    out = subprocess.run(
        [*command, "--data-dir", str(typo)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert str(typo) in out.stderr and "Traceback" not in out.stderr
    assert not typo.exists()
    if "--apply" in command:
        return  # --apply may start a log in an existing dir
    (tmp_path / "empty").mkdir()  # a dir without a log: named too
    out = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "empty")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert str(tmp_path / "empty") in out.stderr
    assert list((tmp_path / "empty").iterdir()) == []


def option_lines_without_help(text: str) -> list[str]:
    """Option lines of an argparse help text that carry no help: the flags
    alone on their line, and the next line not a continuation."""
    lines = text.splitlines()
    bare = []
    for index, line in enumerate(lines):
        if not re.match(r"^  -", line):
            continue
        if re.match(
            r"^  -\S*(?: [A-Z_{}.,\[\]-]+)?(?:, -\S+(?: [A-Z_{}.,\[\]-]+)?)*$", line
        ):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if not re.match(r"^ {8,}\S", following):
                bare.append(line)
    return bare


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "api"],
        ["-m", "api", "serve"],
        ["-m", "api", "status"],
        ["-m", "api", "replay"],
        ["scripts/replay.py"],
    ],
    ids=["iiilog", "serve", "status", "replay", "replay-script"],
)
def test_help_is_plain_text_and_explains_every_flag(command: list[str]) -> None:
    """Every --help (iiilog, its commands, scripts/replay.py) is plain text,
    every flag has its help, and every .md file it names exists."""
    out = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n  -") >= 1  # the probe below sees options
    assert option_lines_without_help(out.stdout) == []
    # Plain text: no reStructuredText (``x``, :role:`x`) or Markdown (`x`).
    assert "`" not in out.stdout
    for name in re.findall(r"[\w./-]+\.md\b", out.stdout):
        assert (ROOT / name).exists(), f"help names {name}, which does not exist"


@pytest.mark.parametrize(
    "script",
    [
        "scripts/run_dev.py",
        "scripts/sdk_suite.py",
        *sorted(
            str(path.relative_to(ROOT))
            for path in (ROOT / "bench").glob("*.py")
            if "argparse" in path.read_text()
        ),
    ],
)
def test_every_script_help_is_plain_text(script: str) -> None:
    """The --help of every other script (make run's, the SDK suite's, the
    benchmarks') is plain text too, though they print their docstring."""
    out = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ")
    assert "`" not in out.stdout


def test_replay_usage_names_the_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "api", "replay", "--help"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.startswith("usage: iiilog replay ")
    out = subprocess.run(
        [sys.executable, "scripts/replay.py", "--help"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.startswith("usage: scripts/replay.py ")


def test_node_example_lock_file_is_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    lock = "examples/todo-node/package-lock.json"
    out = subprocess.run(["git", "check-ignore", "-q", lock], cwd=ROOT, timeout=30)
    assert out.returncode == 0
