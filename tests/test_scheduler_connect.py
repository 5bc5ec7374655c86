"""`--scheduler` pointed at something that is not a Dask scheduler: whatever listens there
(an HTTP server, a scheduler's dashboard port, a peer that says nothing, one that sends
garbage or closes at once) or nothing at all, the run ends with exit 5 and a one-line
error naming the address within `connect_timeout`, never a hang or a MemoryError.

Every peer is real: a socket server in a thread of this process on 127.0.0.1 (or a real
`dask scheduler` process for the dashboard port); the engine runs as a CLI process."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, run_cli, wait_for_port, write_csv

CLUSTER_ERROR = 5
CONNECT_TIMEOUT = 3
#: generous: the CLI's start-up and a busy 2-core machine come on top of the timeout
WITHIN = 45


class _Peer:
    """A TCP server on 127.0.0.1 that treats every connection with `behave(conn)`."""

    def __init__(self, behave) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.behave = behave
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(conn)
            try:
                self.behave(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


def _silent(conn: socket.socket) -> None:
    """Accept and say nothing (the connection stays open)."""


def _garbage(conn: socket.socket) -> None:
    """64 bytes of 0xff: Dask reads a frame length of 2**64 - 1 from them."""
    conn.sendall(b"\xff" * 64)


def _close_at_once(conn: socket.socket) -> None:
    conn.close()


def _http_reply(conn: socket.socket) -> None:
    """A web server that answers whatever it gets with an HTTP error (its first 8 bytes,
    read as a little-endian length, announce exabytes: the reported MemoryError)."""
    conn.settimeout(5)
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture(scope="module")
def sales(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scheduler-connect")
    return write_csv(folder / "sales.csv", [("2024-01-01", "P1", "10.00", "C1"), ("2024-01-02", "P2", "5.50", "")])


def _run_against(address: str, sales: Path, output: Path) -> tuple[subprocess.CompletedProcess, float]:
    config = output.parent / f"{output.name}.yaml"
    config.write_text(f"cluster:\n  connect_timeout: {CONNECT_TIMEOUT}\n")
    started = time.monotonic()
    done = run_cli("run", str(sales), "--output", str(output), "--scheduler", address, "--config", str(config),
                   timeout=240)
    return done, time.monotonic() - started


def _assert_cluster_error(done: subprocess.CompletedProcess, seconds: float, address: str) -> None:
    assert done.returncode == CLUSTER_ERROR, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT} s"), last
    assert "Traceback" not in done.stderr
    assert "MemoryError" not in done.stderr and "unexpected error" not in done.stderr
    assert seconds < WITHIN, f"took {seconds:.1f} s"


@pytest.mark.parametrize("behave", [_silent, _garbage, _close_at_once, _http_reply],
                         ids=["says-nothing", "garbage-bytes", "closes-at-once", "http-error-reply"])
def test_a_peer_that_is_not_a_scheduler_is_a_cluster_error(tmp_path, sales, behave):
    peer = _Peer(behave)
    try:
        done, seconds = _run_against(peer.address, sales, tmp_path / "out")
    finally:
        peer.close()
    _assert_cluster_error(done, seconds, peer.address)
    assert peer.accepted >= 1  # the engine did reach the peer
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()


def test_a_plain_http_server_is_a_cluster_error(tmp_path, sales):
    """Python's http.server waits for the end of a request line that never comes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        done, seconds = _run_against(address, sales, tmp_path / "out")
    finally:
        server.shutdown()
        server.server_close()
    _assert_cluster_error(done, seconds, address)


def test_nothing_listening_is_a_cluster_error(tmp_path, sales):
    address = f"tcp://127.0.0.1:{free_port()}"
    done, seconds = _run_against(address, sales, tmp_path / "out")
    _assert_cluster_error(done, seconds, address)


def test_a_schedulers_dashboard_port_is_a_cluster_error(tmp_path, sales):
    """The HTTP port of a real `dask scheduler` (its dashboard / health endpoints)."""
    port, dashboard = free_port(), free_port()
    dask = str(Path(sys.executable).parent / "dask")
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", f"127.0.0.1:{dashboard}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(dashboard)
        address = f"tcp://127.0.0.1:{dashboard}"
        done, seconds = _run_against(address, sales, tmp_path / "out")
    finally:
        scheduler.terminate()
        try:
            scheduler.wait(30)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
    _assert_cluster_error(done, seconds, address)


def test_the_probe_alone_is_bounded_by_the_timeout():
    """engine.execution.backends.probe_scheduler, in process, against a silent peer: the deadline holds."""
    from engine.errors import ClusterError
    from engine.execution.backends import probe_scheduler

    peer = _Peer(_silent)
    started = time.monotonic()
    try:
        with pytest.raises(ClusterError, match=peer.address.replace(".", r"\.")):
            probe_scheduler(peer.address, None, 2)
    finally:
        peer.close()
    assert time.monotonic() - started < 20
