"""One run at a time per output folder: a second run fails at once (exit 9) naming the
holder, and changes nothing; the lock goes with its holder, however that ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import published_bytes, run_cli, write_csv

ROWS = [("2024-01-01", "P1", "1.00", "C1"), ("2024-01-02", "P2", "2.00", "C2")]
OTHER = [("2024-03-01", "P9", "9.00", "C9")]

HOLDER = """
import sys, time
from pathlib import Path
from engine.outputs.publication import output_lock
with output_lock(Path(sys.argv[1]), "holder-run-id"):
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
"""


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the lock holder ended early"
        assert time.monotonic() < deadline, "the lock holder never took the lock"
        time.sleep(0.01)


@pytest.fixture
def held(tmp_path):
    """An output folder with a published run, and a separate process holding its lock."""
    source = write_csv(tmp_path / "sales.csv", ROWS)
    output = tmp_path / "out"
    done = run_cli("run", str(source), "--output", str(output))
    assert done.returncode == 0, done.stderr
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(output), str(ready), str(release)])
    try:
        _wait_for(ready, holder)
        yield output, holder, release
    finally:
        release.touch()
        holder.wait(timeout=120)


def test_a_second_run_into_a_busy_folder_fails_at_once_naming_the_holder(tmp_path, held):
    output, holder, release = held
    before = published_bytes(output)
    history = (output / "run_history.jsonl").read_bytes()
    other = write_csv(tmp_path / "other.csv", OTHER)

    done = run_cli("run", str(other), "--output", str(output), timeout=120)
    assert done.returncode == 9, done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert str(output) in line and "holder-run-id" in line and f"pid {holder.pid}" in line, line
    assert published_bytes(output) == before
    assert (output / "run_history.jsonl").read_bytes() == history  # the refused run wrote nothing there
    assert not [p for p in output.iterdir() if p.name.startswith(".staging-")]

    release.touch()
    holder.wait(timeout=120)
    done = run_cli("run", str(other), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert published_bytes(output) != before


def test_a_killed_holder_releases_the_lock(tmp_path, held):
    output, holder, _ = held
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=120)
    done = run_cli("run", str(write_csv(tmp_path / "other.csv", OTHER)), "--output", str(output))
    assert done.returncode == 0, done.stderr


def test_two_runs_started_together_end_with_one_run_published(tmp_path):
    sources = [write_csv(tmp_path / f"s{i}.csv", rows) for i, rows in enumerate((ROWS, OTHER))]
    output = tmp_path / "out"
    output.mkdir()
    from conftest import engine_command

    processes = [subprocess.Popen(engine_command("run", str(source), "--output", str(output)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for source in sources]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 9]), results
    for code, stderr in results:
        if code == 9:
            assert "in use by another run" in stderr
    report = json.loads((output / "run_report.json").read_text())
    # every published name resolves into the folder of the run named by run_report.json
    for name in ("daily_sales_summary.csv", "report.html", "rejected_rows.parquet"):
        assert Path(os.path.realpath(output / name)).parent.name == report["run_id"]


def test_a_lock_file_that_is_a_link_is_refused(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (tmp_path / "elsewhere").write_text("")
    (output / ".lock").symlink_to(tmp_path / "elsewhere")
    done = run_cli("run", str(write_csv(tmp_path / "s.csv", ROWS)), "--output", str(output))
    assert done.returncode == 2, done.stderr
    assert str(output / ".lock") in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "elsewhere").read_text() == ""
