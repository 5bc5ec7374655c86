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
    "rejected_rows.parquet",
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


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run(engine_command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


@pytest.fixture(scope="session")
def dirty_300k(tmp_path_factory) -> Path:
    """A 300,000-row dirty dataset from the generator (every reject reason, duplicates)."""
    from engine.sources.generate import generate_sales

    path = tmp_path_factory.mktemp("data") / "sales_300k.csv"
    generate_sales(path, 300_000, seed=7)
    return path


@pytest.fixture(scope="session", autouse=True)
def session_audit_log(tmp_path_factory) -> Path:
    """Every command the tests run appends to a throw-away audit log, never to the
    installation's (the variable reaches the `engine` processes the tests start)."""
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    previous = os.environ.get("ENGINE__AUDIT__PATH")
    os.environ["ENGINE__AUDIT__PATH"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("ENGINE__AUDIT__PATH", None)
    else:
        os.environ["ENGINE__AUDIT__PATH"] = previous


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
    """A real `dask scheduler` and `dask worker` processes (each with its nanny) on
    127.0.0.1; with `tls` (a TlsFiles), every connection is TLS."""

    def __init__(self, workdir: Path, workers: int = 2, tls: TlsFiles | None = None,
                 memory_limit: str = "auto", env: dict | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        bin_dir = Path(sys.executable).parent
        self.dask = str(bin_dir / "dask") if (bin_dir / "dask").exists() else shutil.which("dask")
        tls_args = tls.cli_args() if tls else []
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard", *tls_args)
        try:
            wait_for_port(self.port)
            for i in range(workers):
                self.workers.append(self._start(
                    f"worker-{i}", "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                    "--memory-limit", memory_limit, "--host", "127.0.0.1", "--no-dashboard",
                    "--local-directory", str(workdir / f"w{i}"), *tls_args))
            if workers:
                self.wait_for_workers(workers)
        except BaseException:
            self.stop()  # never leave processes behind when the cluster did not come up
            raise

    def client(self, timeout: float = 30):
        from distributed import Client

        return Client(self.address, timeout=timeout, security=self.tls.security() if self.tls else None)

    def settings(self) -> dict:
        """Configuration keys that point a run at this cluster."""
        keys = {"cluster.scheduler": self.address}
        if self.tls:
            keys.update({"cluster.tls": "files", "cluster.tls_ca_file": str(self.tls.ca),
                         "cluster.tls_cert": str(self.tls.cert), "cluster.tls_key": str(self.tls.key)})
        return keys

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "w") as log:
            return subprocess.Popen([self.dask, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                    start_new_session=True, env=self.env)

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        with self.client(timeout) as client:
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


class TlsFiles:
    """A throw-away certificate authority and one certificate it signed for 127.0.0.1,
    as PEM files (what an operator would configure)."""

    def __init__(self, folder: Path) -> None:
        import datetime as dt
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        def name(text):
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

        now = dt.datetime.now(dt.timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
        cert = (x509.CertificateBuilder().subject_name(name("dask")).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.key.chmod(0o600)

    def cli_args(self) -> list[str]:
        return ["--tls-ca-file", str(self.ca), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]

    def security(self):
        from distributed.security import Security

        return Security(tls_ca_file=str(self.ca), tls_client_cert=str(self.cert), tls_client_key=str(self.key),
                        require_encryption=True)


@pytest.fixture(scope="session")
def external_cluster(tmp_path_factory):
    cluster = ExternalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def spec() -> None:
    """Skip (the only allowed skip) when the official OpenLineage schemas are not beside
    the repository at ../shared/openlineage-spec."""
    from openlineage_schemas import SPEC_MISSING_MESSAGE, spec_available

    if not spec_available():
        pytest.skip(SPEC_MISSING_MESSAGE)


@pytest.fixture
def isolated_openlineage_config(monkeypatch, tmp_path) -> None:
    """Keep OPENLINEAGE_* variables and openlineage.yml files from configuring the client."""
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
