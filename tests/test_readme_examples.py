"""The README's commands as a newcomer runs them: in order, as written, in a fresh folder
laid out like the repository (`.venv/`, `configs/`, `examples/`), each exiting 0.

The commands are the `.venv/bin/engine ...` lines of the README's `sh` blocks (except
those in SKIPPED, which need data or servers the README does not set up), then the
commands the README names in its text (INLINE). Only the row count of `engine
generate` is made small, to keep the test fast.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
README = REPOSITORY / "README.md"

#: README lines not run, with the reason
SKIPPED = {
    ".venv/bin/engine run 'data/2024-*.csv.gz' --mode dask": "no compressed daily files are made by the README",
    ".venv/bin/engine run data/parquet/ --mode distributed --workers 2": "no Parquet folder is made by the README",
    ".venv/bin/engine run data/sales.csv --scheduler tcp://10.0.0.5:8786": "needs a cluster at that address",
    ".venv/bin/engine run 'data/daily/*.csv' --output out": "no daily files are made by the README",
    ".venv/bin/engine run 'data/daily/*.csv' --output out --full": "no daily files are made by the README",
    ".venv/bin/engine run 's3://bucket/sales/2026-*.csv.gz' --output s3://bucket/reports/daily":
        "needs that bucket (tests/test_object_storage.py runs such commands against a local S3 server)",
    ".venv/bin/engine run postgresql://analyst@db:5432/shop --table sales --sink postgresql://etl@db:5432/reports":
        "needs that database (tests/test_postgresql.py runs such commands against a local PostgreSQL)",
}

#: commands the README's text names (section "Lineage", "Logs, progress and debugging",
#: "Permissions, audit log, backups"), with their placeholders filled in
INLINE = (
    ("engine lineage show --output DIR", {"DIR": "out"}),
    ("engine run INPUT --until NODE", {"INPUT": "data/sales.csv", "NODE": "daily_sales_summary"}),
    ("engine dag", {}),
    ("engine audit", {}),
)

#: what the test changes in a README line: fewer rows
SMALLER = {"--rows 1000000": "--rows 3000"}

#: the archive name of the README's restore example, replaced by the one `backup list` printed
EXAMPLE_ARCHIVE = "backup-20260301T023000Z.tar.gz"


def readme_commands() -> list[str]:
    """The `.venv/bin/engine` lines of the README's sh blocks (also as the end of a pipe),
    comments removed, in order."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            runs_engine = command.startswith(".venv/bin/engine ") or " | .venv/bin/engine " in command
            if runs_engine and command not in SKIPPED:
                commands.append(command.replace(" [--all]", ""))
    return commands


def inline_commands() -> list[str]:
    """The INLINE commands, each checked to be in the README's text, placeholders filled in."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for written, values in INLINE:
        assert f"`{written}`" in text, f"the README no longer says `{written}`: update INLINE"
        for placeholder, value in values.items():
            written = written.replace(placeholder, value)
        commands.append(".venv/bin/" + written)
    return commands


def _repository_like(folder: Path) -> None:
    """`folder` laid out as the README's commands expect the repository root."""
    (folder / ".venv").symlink_to(REPOSITORY / ".venv")
    for name in ("configs", "examples"):
        (folder / name).symlink_to(REPOSITORY / name)


def _run(command: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_the_readme_commands_run_as_written(tmp_path):
    assert (REPOSITORY / ".venv" / "bin" / "engine").exists(), "the README's commands need .venv/ (make demo)"
    _repository_like(tmp_path)
    commands = readme_commands() + inline_commands()
    assert len(commands) >= 15 and set(SKIPPED) <= {
        re.sub(r"\s+#.*$", "", line).strip() for line in README.read_text(encoding="utf-8").splitlines()}
    archive = None
    for command in commands:
        for written, smaller in SMALLER.items():
            command = command.replace(written, smaller)
        if EXAMPLE_ARCHIVE in command:
            assert archive, "the README restores an archive before creating one"
            command = command.replace(EXAMPLE_ARCHIVE, archive)
        done = _run(command, tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if " backup list" in command:
            archive = done.stdout.split()[-1]
    assert (tmp_path / "restored" / "data" / "sales.csv").read_bytes() == (tmp_path / "data" / "sales.csv").read_bytes()


def _planned_commands(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` would run on a fresh clone (`make -n` in a copy of the
    Makefile and pyproject.toml, with no .venv yet)."""
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_bytes((REPOSITORY / name).read_bytes())
    done = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_demo_installs_the_runtime_only_and_make_test_adds_the_dev_extra(tmp_path):
    demo = [line for line in _planned_commands("demo", tmp_path) if "pip install" in line]
    assert demo and all(line.endswith("install --quiet -e .") or "--upgrade pip" in line for line in demo)
    test = [line for line in _planned_commands("test", tmp_path) if "pip install" in line]
    assert any(line.endswith("-e '.[dev]'") for line in test)
