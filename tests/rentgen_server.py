"""Data.Rentgen, a real OpenLineage consumer, on 127.0.0.1 for the tests.

    from postgres_server import postgres_server  # noqa: F401  (the database it stores lineage in)
    from rentgen_server import rentgen_server    # noqa: F401

    def test_something(rentgen_server):
        rentgen_server.openlineage_config()         # the engine's openlineage.yml, as a dict
        rentgen_server.get("/v1/jobs", search_query="sales")   # its REST API, as JSON

Data.Rentgen (PyPI `data-rentgen`, pinned below) needs Python 3.12 or newer while the suite
runs on 3.11, so it lives in its own virtual environment, `.venv-rentgen/venv/` at the top
of the repository (git-ignored): created on first use from the package index pip is
configured with here (pip.conf, PIP_* variables), then reused while its stamp file names
the same requirement. `python tests/rentgen_server.py` creates it ahead of a test run.
The interpreter is RENTGEN_PYTHON when set, else a pyenv 3.12 (or 3.13), else
`python3.12` on the PATH.

The fixture (one per test module):

1. creates a fresh database in the session's PostgreSQL server (tests/postgres_server.py)
   and migrates it with Data.Rentgen's own commands, as an operator would:
   `python -m data_rentgen.db.migrations upgrade head`, then
   `python -m data_rentgen.db.scripts.create_partitions` (the run, operation, input,
   output and column-lineage tables are partitioned by month: this month and the next);
2. starts tests/rentgen_launcher.py with the venv's Python: the REST API and the HTTP
   ingestion (`POST /v1/openlineage`) on two free ports, and the Kafka consumer, all in
   one process, FastStream's in-memory TestKafkaBroker standing in for Kafka between the
   ingestion and the consumer (no Kafka broker can be installed here: see the launcher);
3. waits until both HTTP servers answer `/monitoring/ping`;
4. signs in through the dummy auth provider (`POST /v1/auth/token`: any login) and
   creates the personal token the ingestion requires (`POST /v1/personal-tokens`);
5. yields a `RentgenServer`; at the end sends SIGTERM to the launcher's process group
   (SIGKILL after 30 s) and drops the database.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = Path(__file__).resolve().with_name("rentgen_launcher.py")
#: git-ignored: the virtual environment (venv/) and the lock its creator holds
RENTGEN_DIR = ROOT / ".venv-rentgen"
VENV = RENTGEN_DIR / "venv"
STAMP = VENV / ".installed"
#: The Data.Rentgen release the tests run, with the extras for its REST API (server), its
#: Kafka consumer (consumer), its HTTP ingestion (http2kafka) and PostgreSQL (postgres).
REQUIREMENT = "data-rentgen[server,consumer,http2kafka,postgres]==0.7.2"
#: Data.Rentgen's Requires-Python is >=3.12.
PYTHONS = ("3.12", "3.13")
HOST = "127.0.0.1"
INGEST_ENDPOINT = "v1/openlineage"


# -- the virtual environment ------------------------------------------------------


def rentgen_python() -> Path:
    """The Python of `.venv-rentgen/`, creating the environment first when it is missing
    or was made for another requirement (under a lock: one creator at a time)."""
    python = VENV / "bin" / "python"
    if _stamp() == REQUIREMENT and python.exists():
        return python
    RENTGEN_DIR.mkdir(exist_ok=True)
    with open(RENTGEN_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp() != REQUIREMENT or not python.exists():
            _create_venv()
    return python


def _stamp() -> str | None:
    try:
        return STAMP.read_text().strip()
    except OSError:
        return None


def _create_venv() -> None:
    base = base_python()
    shutil.rmtree(VENV, ignore_errors=True)
    started = time.monotonic()
    _checked([str(base), "-m", "venv", str(VENV)], "creating the Data.Rentgen virtual environment")
    _checked([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", REQUIREMENT],
             f"pip install {REQUIREMENT}")
    STAMP.write_text(REQUIREMENT + "\n")
    print(f"created {VENV} with {base} in {time.monotonic() - started:.0f} s", file=sys.stderr)


def base_python() -> Path:
    """A Python of PYTHONS to create the environment with (see the module's description)."""
    home = Path(os.environ.get("PYENV_ROOT") or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pyenv")
    candidates = [os.environ.get("RENTGEN_PYTHON")]
    for version in PYTHONS:
        candidates += sorted((str(p) for p in home.glob(f"versions/{version}*/bin/python{version}")), reverse=True)
    candidates += [shutil.which(f"python{version}") for version in PYTHONS]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"],
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return Path(candidate)
    raise RuntimeError(f"Data.Rentgen needs Python {' or '.join(PYTHONS)}: none found (set RENTGEN_PYTHON, or "
                       f"install one with pyenv)")


def _checked(command: list[str], what: str, **options: Any) -> None:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, **options)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{(done.stderr or done.stdout)[-3000:]}")


# -- the server -------------------------------------------------------------------


class RentgenServer:
    """Data.Rentgen started by tests/rentgen_launcher.py (see the module's description)."""

    def __init__(self, python: Path, database_url: str, workdir: Path) -> None:
        self.python = python
        self.database_url = database_url
        self.workdir = workdir
        self.log = workdir / "rentgen.log"
        self.secret = secrets.token_hex(32)
        self.api_url = self.ingest_url = ""
        self.access_token = self.personal_token = ""
        self._process: subprocess.Popen | None = None

    # what tests use

    def openlineage_config(self) -> dict:
        """The OpenLineage client configuration that sends the engine's events to the
        ingestion: the HTTP transport, its endpoint, the personal token as ApiKey auth."""
        return {"transport": {"type": "http", "url": self.ingest_url, "endpoint": INGEST_ENDPOINT,
                              "auth": {"type": "api_key", "apiKey": self.personal_token}}}

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` of the REST API (e.g. /v1/runs) as the signed-in user; its JSON."""
        answer = requests.get(self.api_url + path, params=params, timeout=30,
                              headers={"Authorization": f"Bearer {self.access_token}"})
        answer.raise_for_status()
        return answer.json()

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    # lifecycle

    def start(self, attempts: int = 3) -> RentgenServer:
        self._migrate()
        for _ in range(attempts):  # another process may take a free port before the launcher binds it
            api_port, ingest_port = _free_port(), _free_port()
            self.api_url, self.ingest_url = f"http://{HOST}:{api_port}", f"http://{HOST}:{ingest_port}"
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    [str(self.python), str(LAUNCHER), "--database-url", self.database_url, "--host", HOST,
                     "--api-port", str(api_port), "--ingest-port", str(ingest_port)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
                    env=self._env(), start_new_session=True)
            if self._wait_ready():
                self._sign_in()
                return self
            self.stop()
        raise RuntimeError(f"Data.Rentgen did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the launcher's process group; SIGKILL if it lingers past 30 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _env(self) -> dict[str, str]:
        """The launcher's and the scripts' environment: the database, the token secret, no
        config.yml from elsewhere, nothing of the suite's Python."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DATA_RENTGEN", "PYTHON", "VIRTUAL_ENV"))}
        env.update({"DATA_RENTGEN__DATABASE__URL": self.database_url, "RENTGEN_SECRET": self.secret,
                    "DATA_RENTGEN_CONFIG_FILE": str(self.workdir / "config.yml")})  # absent: defaults
        return env

    def _migrate(self) -> None:
        for module in ("data_rentgen.db.migrations upgrade head", "data_rentgen.db.scripts.create_partitions"):
            _checked([str(self.python), "-m", *module.split()], f"python -m {module}", cwd=self.workdir,
                     env=self._env(), timeout=300)

    def _wait_ready(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                if all(requests.get(url + "/monitoring/ping", timeout=5).ok for url in (self.api_url, self.ingest_url)):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def _sign_in(self) -> None:
        """An access token from the dummy auth provider (any login; the user is created),
        then a personal token for the ingestion, which accepts nothing else."""
        answer = requests.post(self.api_url + "/v1/auth/token", timeout=30,
                               data={"username": "sales-engine", "password": "unused"})
        answer.raise_for_status()
        self.access_token = answer.json()["access_token"]
        answer = requests.post(self.api_url + "/v1/personal-tokens", json={"name": "sales-engine"}, timeout=30,
                               headers={"Authorization": f"Bearer {self.access_token}"})
        answer.raise_for_status()
        self.personal_token = answer.json()["content"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _asyncpg_url(url: str) -> str:
    """A PostgresServer URL (postgresql://user:password@host:port/db) for SQLAlchemy's
    asyncpg driver, the one Data.Rentgen uses."""
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


@pytest.fixture(scope="module")
def rentgen_server(postgres_server, tmp_path_factory) -> Iterator[RentgenServer]:
    """Data.Rentgen on 127.0.0.1 with a fresh database (see the module's description)."""
    python = rentgen_python()
    database = postgres_server.create_database(f"rentgen_{secrets.token_hex(4)}")
    server = RentgenServer(python, _asyncpg_url(postgres_server.url(database, password=True)),
                           tmp_path_factory.mktemp("rentgen"))
    try:
        yield server.start()
    finally:
        server.stop()
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', database="postgres")


if __name__ == "__main__":  # create (or check) the virtual environment ahead of a test run
    print(rentgen_python())
