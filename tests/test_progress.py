"""Progress of a run: a live line on a terminal, periodic log lines otherwise, in every
mode; never anything on stdout but the final summary when stdout is not a terminal."""

from __future__ import annotations

import re

import pytest
from conftest import engine_command, run_cli
from terminal import run_in_terminal

from engine.observability.progress import ProgressState

SUMMARY = re.compile(
    r"\Arun \S+ \((?:pandas|dask|distributed) mode\) finished in [\d.]+ s\n"
    r"  rows: .*\n  days: .*\n  alerts: .*\n  outputs: .*\n\Z")


@pytest.fixture(scope="module")
def sales_100k(tmp_path_factory, dirty_300k):
    """The first 100,000 rows of the dirty dataset (3.1 MiB)."""
    path = tmp_path_factory.mktemp("progress") / "sales_100k.csv"
    with open(dirty_300k, encoding="utf-8") as source, open(path, "w", encoding="utf-8") as head:
        head.writelines(line for _, line in zip(range(100_001), source))
    return path


def _partitions(stderr: str) -> int:
    return int(re.search(r"(\d+) partition\(s\)", stderr).group(1))


def test_live_line_on_a_terminal_in_dask_mode(tmp_path, sales_100k):
    status, screen = run_in_terminal(
        engine_command("run", str(sales_100k), "--output", str(tmp_path / "out"), "--mode", "dask",
                       "--partition-size", "256KiB"),
        env={"ENGINE__PROGRESS__DELAY": "0"})
    assert status == 0, screen
    partitions = _partitions(screen)
    draws = re.findall(r"\r\x1b\[2K(\[dask\] [^\r\n]*)", screen)
    assert draws[0].startswith("[dask] step 0/")  # drawn from the start (delay 0)
    # The last frame, drawn as the dataflow ends: every partition and task, and the rate.
    assert re.match(rf"\[dask\] step \d+/\d+ · partitions {partitions}/{partitions} \(100%\) · "
                    rf"tasks (\d+)/\1 · ~[\d,]+ rows/s · \d+:\d\d elapsed$", draws[-1]), draws[-1]
    done = [int(m.group(1)) for line in draws for m in [re.search(rf"partitions (\d+)/{partitions}", line)] if m]
    assert done == sorted(done)  # counts only go up
    # The line is erased before the summary: the summary is clean lines on the terminal.
    after_last_draw = screen[screen.rindex("\x1b[2K") + len("\x1b[2K"):].replace("\r\n", "\n")
    assert "[dask]" not in after_last_draw
    summary = after_last_draw[after_last_draw.index("\nrun ") + 1:]
    assert SUMMARY.match(summary), summary
    assert "progress:" not in screen  # a terminal gets the live line, not log lines


def test_not_a_terminal_log_lines_and_stdout_holds_only_the_summary(tmp_path, sales_100k):
    out = tmp_path / "out"
    done = run_cli("run", str(sales_100k), "--output", str(out), "--mode", "dask", "--partition-size", "256KiB",
                   env={"ENGINE__PROGRESS__INTERVAL": "0.1", "ENGINE__PROGRESS__DELAY": "0"})
    assert done.returncode == 0, done.stderr
    assert SUMMARY.match(done.stdout), done.stdout
    partitions = _partitions(done.stderr)
    lines = [line for line in done.stderr.splitlines() if "engine.progress: progress: " in line]
    assert "progress: [dask] step 0/" in lines[0]  # logged from the start (delay 0)
    assert re.search(rf"progress: \[dask\] step \d+/\d+ · partitions {partitions}/{partitions} \(100%\) · "
                     rf"tasks (\d+)/\1 · ~[\d,]+ rows/s", lines[-1]), lines[-1]  # the final counts
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    logged = (out / "pipeline.log").read_text()
    assert sum("progress: [dask]" in line for line in logged.splitlines()) == len(lines)


def test_pandas_mode_counts_the_partitions_it_streams(tmp_path, sales_100k):
    done = run_cli("run", str(sales_100k), "--output", str(tmp_path / "out"), "--mode", "pandas",
                   "--partition-size", "1MiB",
                   env={"ENGINE__PROGRESS__INTERVAL": "0.05", "ENGINE__PROGRESS__DELAY": "0"})
    assert done.returncode == 0, done.stderr
    partitions = _partitions(done.stderr)
    assert partitions > 1
    lines = [line for line in done.stderr.splitlines() if "engine.progress: progress: " in line]
    assert lines and all("progress: [pandas] " in line for line in lines), lines
    assert re.search(rf"partitions {partitions}/{partitions} \(100%\) · ~[\d,]+ rows/s", lines[-1]), lines[-1]
    assert SUMMARY.match(done.stdout)


def test_progress_off_and_short_runs_show_nothing(tmp_path, sales_100k):
    done = run_cli("run", str(sales_100k), "--output", str(tmp_path / "a"), "--mode", "dask", "--progress", "off",
                   env={"ENGINE__PROGRESS__INTERVAL": "0.05"})
    assert done.returncode == 0 and "engine.progress" not in done.stderr
    status, screen = run_in_terminal(engine_command("run", str(sales_100k), "--output", str(tmp_path / "b"),
                                                    "--mode", "pandas"),
                                     env={"ENGINE__PROGRESS__DELAY": "3600"})  # a run shorter than the delay
    assert status == 0 and "[pandas]" not in screen, screen
    assert SUMMARY.match(screen[screen.index("\nrun ") + 1:].replace("\r\n", "\n"))


@pytest.mark.slow
def test_distributed_progress_comes_from_the_scheduler(tmp_path, sales_100k):
    """An embedded LocalCluster: Dask's own progress feed counts the partitions and tasks."""
    done = run_cli("run", str(sales_100k), "--output", str(tmp_path / "out"), "--mode", "distributed",
                   "--workers", "2", "--partition-size", "256KiB",
                   env={"ENGINE__PROGRESS__INTERVAL": "0.1", "ENGINE__PROGRESS__DELAY": "0"})
    assert done.returncode == 0, done.stderr
    assert SUMMARY.match(done.stdout), done.stdout
    partitions = _partitions(done.stderr)
    counted = [(int(m.group(1)), int(m.group(2)), int(m.group(3)))
               for m in re.finditer(rf"progress: \[distributed\] partitions (\d+)/{partitions} \(\d+%\) · "
                                    rf"tasks (\d+)/(\d+)", done.stderr)]
    assert counted, done.stderr
    assert all(done_tasks <= total for _, done_tasks, total in counted)
    assert [p for p, _, _ in counted] == sorted(p for p, _, _ in counted)
    assert max(p for p, _, _ in counted) > 0


def test_rate_and_eta_arithmetic():
    state = ProgressState(mode="dask", partitions_total=10, expected_rows=1_000_000, started=100.0)
    state.compute_started, state.partitions_done, state.tasks_done, state.tasks_total = 100.0, 4, 40, 120
    rate, eta = state.rate_and_eta(now=104.0)
    assert rate == pytest.approx(100_000)  # 400,000 of the expected rows in 4 s
    assert eta == pytest.approx(6.0)  # 6 partitions left at 1 s each
    assert state.describe(now=104.0) == (
        "[dask] partitions 4/10 (40%) · tasks 40/120 · ~100,000 rows/s · ETA 0:06 · 0:04 elapsed")
    state.partitions_done = 10
    assert "finishing" in state.describe(now=110.0)
    state.compute_finished = 110.0
    assert state.rate_and_eta(now=200.0)[0] == pytest.approx(100_000)  # the rate stops with the computation
