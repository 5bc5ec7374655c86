"""Shared fixtures: real files, real runs, real Dask processes on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import load_config
from engine.run import run_pipeline

PUBLISHED_FILES = (
    "daily_sales_summary.csv", "daily_sales_summary.parquet",
    "enriched_daily_summary.csv", "enriched_daily_summary.parquet",
    "weekly_aggregation.csv", "weekly_aggregation.parquet",
    "data_quality_metrics.json", "trend_analysis.json", "top_performing_days.json",
)
HEADER = ("date", "product_id", "amount", "customer_id")


def write_csv(path: Path, rows, header=HEADER) -> Path:
    """A CSV file with `header` and `rows` (sequences of cells), written as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_engine(source, output, mode="pandas", **settings):
    """A real run through the Python API; `settings` are dotted configuration keys."""
    overrides = {"input": str(source), "output": str(output), "mode": mode, **settings}
    return run_pipeline(load_config(overrides=overrides, environ={}))


def published_bytes(output: Path) -> dict[str, bytes]:
    return {name: (output / name).read_bytes() for name in PUBLISHED_FILES}


def read_outputs(output: Path) -> dict:
    """The published outputs in the oracle's form: CSV rows as dicts of cell text, JSON parsed."""
    outputs = {}
    for name in ("daily_sales_summary", "enriched_daily_summary", "weekly_aggregation"):
        with open(output / f"{name}.csv", newline="", encoding="utf-8") as handle:
            outputs[name] = list(csv.DictReader(handle))
    for name in ("data_quality_metrics", "trend_analysis", "top_performing_days"):
        outputs[name] = json.loads((output / f"{name}.json").read_text())
    for alert in outputs["data_quality_metrics"]["alerts"]:
        alert.pop("message")
    return outputs


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(engine_command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="session")
def dirty_300k(tmp_path_factory) -> Path:
    """A 300,000-row dirty dataset from the generator (every reject reason, duplicates)."""
    from engine.generate import generate_sales

    path = tmp_path_factory.mktemp("data") / "sales_300k.csv"
    generate_sales(path, 300_000, seed=7)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class ExternalCluster:
    """A real `dask scheduler` and `dask worker` processes on 127.0.0.1."""

    def __init__(self, workdir: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workdir = workdir
        bin_dir = Path(sys.executable).parent
        self.dask = str(bin_dir / "dask") if (bin_dir / "dask").exists() else shutil.which("dask")
        self.scheduler = self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard")
        wait_for_port(self.port)
        self.workers = [
            self._start(f"worker-{i}", "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                        "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(workdir / f"w{i}"))
            for i in range(workers)
        ]
        self.wait_for_workers(workers)

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")
        return subprocess.Popen([self.dask, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                start_new_session=True)

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def external_cluster(tmp_path_factory):
    cluster = ExternalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
