"""Running on real Dask clusters: unreachable schedulers, TLS, a worker killed with
SIGKILL mid-run, a cluster that loses every worker, Ctrl-C, and memory-limited workers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psutil
import pytest

from conftest import (ExternalCluster, TlsFiles, engine_command, free_port, published_bytes, run_cli, run_engine)

CLUSTER_ERROR = 5


@pytest.fixture(scope="module")
def reference(dirty_300k, tmp_path_factory):
    output = tmp_path_factory.mktemp("reference")
    run_engine(dirty_300k, output, mode="pandas")
    return published_bytes(output)


def test_nothing_listening_is_a_cluster_error(tmp_path, dirty_300k):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = run_cli("run", str(dirty_300k), "--output", str(tmp_path), "--scheduler", address,
                   "--config", str(_config(tmp_path, "cluster:\n  connect_timeout: 2\n")))
    assert done.returncode == CLUSTER_ERROR
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach the Dask scheduler at {address} within 2 s")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_a_scheduler_without_workers_is_a_cluster_error(tmp_path, dirty_300k):
    cluster = ExternalCluster(tmp_path, workers=0)
    try:
        done = run_cli("run", str(dirty_300k), "--output", str(tmp_path / "out"), "--scheduler", cluster.address,
                       "--config", str(_config(tmp_path, "cluster:\n  connect_timeout: 2\n")))
    finally:
        cluster.stop()
    assert done.returncode == CLUSTER_ERROR
    assert f"the Dask scheduler at {cluster.address} has no workers" in done.stderr


def test_tls_with_certificate_files(tmp_path, dirty_300k, reference):
    cluster = ExternalCluster(tmp_path / "cluster", tls=TlsFiles(tmp_path / "tls"))
    try:
        assert cluster.address.startswith("tls://")
        result = run_engine(dirty_300k, tmp_path / "out", mode="distributed", partition_size="2MiB",
                            **cluster.settings())
    finally:
        cluster.stop()
    assert result.report["backend"]["tls"] == "files"
    assert published_bytes(tmp_path / "out") == reference


def test_plain_tcp_client_is_refused_by_a_tls_scheduler(tmp_path, dirty_300k):
    cluster = ExternalCluster(tmp_path / "cluster", workers=0, tls=TlsFiles(tmp_path / "tls"))
    try:
        plain = cluster.address.replace("tls://", "tcp://")
        done = run_cli("run", str(dirty_300k), "--output", str(tmp_path / "out"), "--scheduler", plain,
                       "--config", str(_config(tmp_path, "cluster:\n  connect_timeout: 3\n")))
    finally:
        cluster.stop()
    assert done.returncode == CLUSTER_ERROR


def test_embedded_cluster_with_temporary_tls(tmp_path, dirty_300k, reference):
    result = run_engine(dirty_300k, tmp_path, mode="distributed", partition_size="2MiB",
                        **{"cluster.tls": "temporary", "cluster.workers": 2})
    assert result.report["backend"]["tls"] == "temporary"
    assert published_bytes(tmp_path) == reference


def _when_tasks_run(cluster: ExternalCluster, action, timeout: float = 120) -> threading.Thread:
    """Call `action(observer_client)` as soon as the cluster is executing tasks."""

    def watch():
        with cluster.client() as observer:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(observer.processing().values()):
                    action(observer)
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_worker_killed_mid_run_changes_nothing(tmp_path, dirty_300k, reference):
    cluster = ExternalCluster(tmp_path / "cluster")
    killed = []

    def kill_one_worker(observer):
        pids = observer.run(os.getpid)  # the worker processes, not their nannies
        address, pid = sorted(pids.items())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(address)

    try:
        watcher = _when_tasks_run(cluster, kill_one_worker)
        run_engine(dirty_300k, tmp_path / "out", mode="distributed", partition_size="256KiB", **cluster.settings())
        watcher.join(timeout=5)
    finally:
        cluster.stop()
    assert killed, "the worker was not killed while tasks ran"
    assert published_bytes(tmp_path / "out") == reference


@pytest.mark.slow
def test_a_cluster_that_loses_every_worker_fails_cleanly(tmp_path, dirty_300k):
    previous = tmp_path / "out"
    run_engine(dirty_300k, previous, mode="pandas")
    before = published_bytes(previous)
    cluster = ExternalCluster(tmp_path / "cluster")

    def kill_every_worker_and_nanny(observer):
        for process in cluster.workers:
            os.killpg(process.pid, signal.SIGKILL)

    try:
        _when_tasks_run(cluster, kill_every_worker_and_nanny)
        started = time.monotonic()
        done = run_cli("run", str(dirty_300k), "--output", str(previous),
                       "--scheduler", cluster.address, "--partition-size", "256KiB",
                       "--config", str(_config(tmp_path, "cluster:\n  no_workers_timeout: 3\n")))
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()
    assert done.returncode == CLUSTER_ERROR, done.stderr
    assert "has had no workers for 3 s" in done.stderr.strip().splitlines()[-1]
    assert elapsed < 120
    assert published_bytes(previous) == before


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_its_local_cluster(tmp_path, dirty_300k):
    process = subprocess.Popen(
        engine_command("run", str(dirty_300k), "--output", str(tmp_path / "out"), "--mode", "distributed",
                       "--workers", "2", "--partition-size", "128KiB"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(parent.children(recursive=True)) < 2:
        time.sleep(0.1)
    workers = parent.children(recursive=True)
    assert len(workers) >= 2, "the LocalCluster did not start its workers"
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"worker processes left behind: {alive}"
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()


@pytest.mark.slow
def test_memory_limited_workers_complete_with_adapted_partitions(tmp_path, dirty_300k, reference):
    cluster = ExternalCluster(tmp_path / "cluster", memory_limit="400MiB")
    try:
        result = run_engine(dirty_300k, tmp_path / "out", mode="distributed", **cluster.settings())
    finally:
        cluster.stop()
    # 400 MiB per single-threaded worker -> partitions of at most 400 MiB / 32 = 12.5 MiB
    assert result.report["input"]["partition_bytes"] <= 400 * 2**20 // 32
    assert published_bytes(tmp_path / "out") == reference


def _config(folder, text):
    path = folder / "cluster.yaml"
    path.write_text(text)
    return path
