"""SIGTERM (what `kill`, systemd and Kubernetes send) ends a run like Ctrl-C: the FAIL
lineage event, the history line, the audit record, the cluster torn down, and exit 143;
and whichever signal stopped it, the outcome line is the last thing the run prints:
its LocalCluster's worker processes have exited and logged before it. An interrupted run
is `interrupted` in the run history, the audit log, the HTML report and the Prometheus
text file alike, and left out of the success rate."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading

import psutil
import pytest

from conftest import engine_command, run_cli, write_csv

STARTED = "engine.backends: dask.distributed:"  # logged once the LocalCluster has its workers


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The LocalCluster's worker processes (multiprocessing spawn children, not its resource tracker)."""
    found = []
    for child in parent.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _stop_a_distributed_run(tmp_path, data, signum):
    """Start a distributed run, send `signum` once its cluster is up (seen in its log,
    no sleep), and return (exit status, stderr lines, worker processes, audit path)."""
    audit = tmp_path / "audit.jsonl"
    process = subprocess.Popen(
        engine_command("run", str(data), "--output", str(tmp_path / "out"), "--mode", "distributed",
                       "--workers", "2", "--partition-size", "128KiB"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1", "ENGINE__AUDIT__PATH": str(audit)})
    lines: list[str] = []
    started = threading.Event()
    done: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if STARTED in line:
                started.set()
        done.put(True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(240), "the run never started its cluster:\n" + "\n".join(lines)
        parent = psutil.Process(process.pid)
        workers = _workers(parent)
        assert len(workers) >= 2, "the LocalCluster's workers were not found"
        process.send_signal(signum)
        process.wait(timeout=240)
        done.get(timeout=240)  # every line the run and its children printed, to EOF
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, lines, workers, audit


def _alive(processes):
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow
def test_sigterm_ends_a_distributed_run_like_ctrl_c_with_exit_143(tmp_path, dirty_300k):
    status, lines, workers, audit = _stop_a_distributed_run(tmp_path, dirty_300k, signal.SIGTERM)
    out = tmp_path / "out"
    assert status == 143, "\n".join(lines[-30:])
    assert lines[-1] == "terminated (SIGTERM)", "\n".join(lines[-30:])
    # the workers exited before the outcome line was printed (not merely soon after)
    assert not _alive(workers), f"worker processes outlived the run: {_alive(workers)}"
    assert psutil.wait_procs(workers, timeout=30)[1] == []
    [entry] = [json.loads(line) for line in (out / "run_history.jsonl").read_text().splitlines()]
    assert entry["status"] == "interrupted" and entry["exit_code"] == 143 and entry["error_kind"] == "Terminated"
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["operation"] == "run" and record["outcome"] == "interrupted" and record["exit_code"] == 143
    assert record["run_id"] == entry["run_id"]
    events = [json.loads(line) for line in (out / "lineage" / "events.jsonl").read_text().splitlines()]
    assert events[0]["eventType"] == "START" and events[-1]["eventType"] == "FAIL"
    assert {e["run"]["runId"] for e in events} == {entry["run_id"]}
    assert not (out / "daily_sales_summary.csv").exists()


@pytest.mark.slow
def test_after_ctrl_c_the_outcome_line_comes_after_every_teardown_line(tmp_path, dirty_300k):
    status, lines, workers, audit = _stop_a_distributed_run(tmp_path, dirty_300k, signal.SIGINT)
    assert status == 130, "\n".join(lines[-30:])
    assert lines[-1] == "interrupted", "\n".join(lines[-30:])
    assert not _alive(workers), f"worker processes outlived the run: {_alive(workers)}"
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["outcome"] == "interrupted" and record["exit_code"] == 130


#: A user node that says it has started, then holds the run until a signal stops it.
_HOLDING_MODULE = """
import sys
import time

import pandas as pd


def held(daily_sales_summary: pd.DataFrame) -> dict:
    print("HOLDING", file=sys.stderr, flush=True)
    time.sleep(600)
    return {}
"""


def _interrupt_a_pandas_run(tmp_path, data, out, audit) -> tuple[int, str]:
    """Start a pandas run held by a user node, send Ctrl-C (SIGINT) once the node says it
    is holding the run (read from its stderr, no sleep), return (exit status, stderr)."""
    module = tmp_path / "holding.py"
    module.write_text(_HOLDING_MODULE)
    process = subprocess.Popen(
        engine_command("run", str(data), "--output", str(out), "--mode", "pandas", "--module", str(module)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1", "ENGINE__AUDIT__PATH": str(audit)})
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("HOLDING"):
                process.send_signal(signal.SIGINT)
                break
        lines += process.stderr.readlines()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines)


def test_ctrl_c_is_interrupted_everywhere_and_left_out_of_the_success_rate(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-05-01", "P1", "10.00", "C1"), ("2024-05-02", "P2", "", "")])
    out, audit = tmp_path / "out", tmp_path / "audit.jsonl"
    status, stderr = _interrupt_a_pandas_run(tmp_path, data, out, audit)
    assert status == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    done = run_cli("run", str(data), "--output", str(out), "--mode", "pandas", env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 0, done.stderr

    history = [json.loads(line) for line in (out / "run_history.jsonl").read_text().splitlines()]
    assert [(e["status"], e["exit_code"], e["error_kind"]) for e in history] == [
        ("interrupted", 130, "KeyboardInterrupt"), ("success", 0, None)]
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["outcome"], r["exit_code"], r["run_id"]) for r in records] == [
        (e["status"], e["exit_code"], e["run_id"]) for e in history]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "0 failed, 1 interrupted" in report
    assert "Success rate over the history window: 100.0 % (interrupted runs left out)" in report
    metrics = {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
               for line in (out / "metrics.prom").read_text().splitlines() if not line.startswith("#")}
    assert metrics["engine_runs_success_ratio"] == 1.0 and metrics["engine_runs_in_window"] == 1.0
