"""Nothing the engine writes is readable by other users, whatever the caller's umask."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import PUBLISHED_FILES, engine_command, run_engine, write_csv
from engine.files.permissions import DEFAULT_MODES, FileModes

ROWS = [("2024-01-0%d" % d, f"P{d}", f"{d}.50", f"C{d}") for d in range(1, 8)]


def _engine_with_open_umask(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`engine ...` in a real process started with umask 000 (everything world-writable
    unless the engine sets modes itself)."""
    return subprocess.run(engine_command(*args), capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, **(env or {})}, preexec_fn=lambda: os.umask(0))


def _modes(root: Path) -> dict[str, int]:
    """The permission bits of `root` and of everything below it (links have none of their own)."""
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
            if not p.is_symlink()}


def _assert_modes(root: Path, file_mode: int, dir_mode: int) -> None:
    for name, mode in _modes(root).items():
        assert not mode & stat.S_IRWXO, f"{name} is accessible to other users: {mode:04o}"
        expected = dir_mode if (root.parent / name).is_dir() else file_mode
        assert mode == expected, f"{name}: {mode:04o}, expected {expected:04o}"


def test_a_run_leaves_no_world_readable_file(tmp_path):
    data = tmp_path / "sales.csv"
    done = _engine_with_open_umask("generate", str(data), "--rows", "3000", "--seed", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o640

    output = tmp_path / "out"
    done = _engine_with_open_umask("run", str(data), "--output", str(output), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = {p.name for p in output.rglob("*")}
    assert {*PUBLISHED_FILES, "run_report.json", "pipeline.log", "lineage", "events.jsonl"} <= written
    assert not [name for name in written if name.startswith(".staging-")]
    _assert_modes(output, file_mode=0o640, dir_mode=0o750)

    # a run that fails on its input changes nothing of that, and leaves no staging folder
    bad = write_csv(tmp_path / "bad.csv", [("2024-01-01", "P1")], header=("date", "product_id"))
    done = _engine_with_open_umask("run", str(bad), "--output", str(output), cwd=tmp_path)
    assert done.returncode == 3
    assert not [p for p in output.iterdir() if p.name.startswith(".staging-")]
    _assert_modes(output, file_mode=0o640, dir_mode=0o750)


def test_configured_modes_apply_to_every_file_and_folder(tmp_path, session_audit_log):
    data = write_csv(tmp_path / "sales.csv", ROWS)
    config = tmp_path / "private.yaml"
    config.write_text('permissions:\n  file_mode: "0600"\n  dir_mode: "0700"\n')
    output = tmp_path / "nested" / "out"
    done = _engine_with_open_umask("run", str(data), "--output", str(output), "--config", str(config),
                                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_modes(tmp_path / "nested", file_mode=0o600, dir_mode=0o700)
    assert stat.S_IMODE(session_audit_log.stat().st_mode) == 0o600


def test_the_python_api_publishes_with_the_default_modes_under_any_umask(tmp_path):
    data = write_csv(tmp_path / "sales.csv", ROWS)
    output = tmp_path / "out"
    previous = os.umask(0)
    try:
        run_engine(data, output)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o750
    for name in (*PUBLISHED_FILES, "run_report.json", "lineage/events.jsonl", "lineage/.lock"):
        assert stat.S_IMODE((output / name).stat().st_mode) == 0o640, name
    assert stat.S_IMODE((output / "lineage").stat().st_mode) == 0o750


@pytest.mark.parametrize(("setting", "message"), [
    ('file_mode: "0644"', "permissions.file_mode: '0644' gives other users access"),
    ('dir_mode: "0751"', "permissions.dir_mode: '0751' gives other users access"),
    ("file_mode: 0640", "permissions.file_mode: '416' is not an octal mode"),
    ('dir_mode: "0600"', "permissions.dir_mode: '0600' must give the owner at least 0700"),
    ('file_mode: "04640"', "permissions.file_mode: '04640' sets special bits"),
])
def test_modes_that_would_expose_files_are_refused_before_any_work(tmp_path, setting, message):
    data = write_csv(tmp_path / "sales.csv", ROWS)
    config = tmp_path / "c.yaml"
    config.write_text(f"permissions:\n  {setting}\n")
    done = subprocess.run(engine_command("run", str(data), "--output", str(tmp_path / "out"), "--config",
                                         str(config)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {config}: {message}")
    assert not (tmp_path / "out").exists()


def test_the_umask_never_grants_more_than_the_modes():
    assert DEFAULT_MODES.umask == 0o027
    assert FileModes(file=0o600, directory=0o700).umask == 0o077
    assert FileModes(file=0o660, directory=0o770).umask == 0o007
