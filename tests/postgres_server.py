"""A real, throw-away PostgreSQL server for the tests (Debian's `postgresql` package).

    from postgres_server import postgres_server  # the session fixture (import it into the test module)

    def test_something(postgres_server):
        postgres_server.create_database("shop")
        postgres_server.execute("CREATE TABLE t (x int)", database="shop")
        url = postgres_server.url("shop")            # postgresql://engine@127.0.0.1:PORT/shop
        env = {"PGPASSWORD": postgres_server.password}

One cluster per test session, whichever modules import the fixture: `initdb` into a
fresh folder under the system temp folder (as the `postgres` user when the tests run as
root: initdb and the server refuse root), a server listening on 127.0.0.1 only, on a free
port, with its unix socket in that folder, `fsync` off. It has two roles:

- the superuser (`postgres`), reached only over the unix socket without a password (what
  the fixture's own `execute` and `connect` use by default);
- `engine`, a login role with a password (`password`), reached over TCP with
  SCRAM-SHA-256, owner of the database `engine`: what the engine under test connects as.

The server is stopped (fast shutdown, then killed if it lingers) and its folder removed
when the session ends, or when the server fails to come up; if the test process dies
without stopping it, the server shuts itself down.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "postgres"
USER = "engine"
DATABASE = "engine"
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")


def server_binaries() -> Path | None:
    """The folder of the newest installed server's `initdb` and `postgres` (Debian's
    /usr/lib/postgresql/<version>/bin, else the PATH's), None when there is no server."""
    versions = sorted((p for p in _DEBIAN_BINARIES.glob("*/bin") if (p / "postgres").exists()),
                      key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "postgres").exists() else None


class PostgresServer:
    """A running throw-away PostgreSQL cluster (see the module's description)."""

    def __init__(self, binaries: Path, user: str = USER, database: str = DATABASE) -> None:
        self.binaries = binaries
        self.host = "127.0.0.1"
        self.user = user
        self.database = database
        #: the password of `user` (never part of `url()`: give it as PGPASSWORD, or `url(password=True)`)
        self.password = "pw-" + secrets.token_hex(8)
        self.folder = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.folder / "data"
        self.socket_dir = str(self.folder)
        self.log = self.folder / "server.log"
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._owner = pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None
        try:
            if self._owner is not None:
                os.chown(self.folder, self._owner.pw_uid, self._owner.pw_gid)
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8",
                      "--auth-local=trust", "--auth-host=scram-sha-256")
            self._start()
            self.create_role(user, self.password)
            self.create_database(database, owner=user)
        except BaseException:
            self.stop()
            raise

    def url(self, database: str | None = None, user: str | None = None, password: bool | str = False,
            port: int | None = None) -> str:
        """`postgresql://user@127.0.0.1:PORT/database` (the engine's role and database by
        default); with `password` (True: the role's own, or a given text) it is in the URL."""
        secret = self.password if password is True else password
        who = user or self.user
        credentials = f"{who}:{secret}" if secret else who
        return f"postgresql://{credentials}@{self.host}:{port or self.port}/{database or self.database}"

    def connect(self, database: str | None = None, user: str | None = None, **options: Any):
        """A psycopg connection over the unix socket (autocommit unless `autocommit=False`):
        as the superuser by default, or as `user` (any role: local connections are trusted)."""
        import psycopg

        options.setdefault("autocommit", True)
        return psycopg.connect(host=self.socket_dir, port=self.port, user=user or SUPERUSER,
                               dbname=database or self.database, **options)

    def execute(self, sql: str, params: Sequence[Any] | None = None, database: str | None = None,
                user: str | None = None) -> list[tuple]:
        """Run one statement (as the superuser unless `user`) and return its rows (none
        for a statement without a result)."""
        with self.connect(database, user) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str, owner: str | None = None) -> str:
        """A new database owned by `owner` (the engine's role by default); returns its name."""
        self.execute(f"CREATE DATABASE {_ident(name)} OWNER {_ident(owner or self.user)}", database="postgres")
        return name

    def create_role(self, name: str, password: str | None = None, *options: str) -> str:
        """A login role with `password` (None: it cannot log in over TCP) and options such
        as `CREATEDB`; returns its name."""
        from psycopg import sql

        statement = sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(name), sql.SQL(" ".join(options)))
        if password:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        with self.connect("postgres") as connection:
            connection.execute(statement)
        return name

    def stop(self) -> None:
        """Stop the server (fast shutdown; killed after 30 s) and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, attempts: int = 3) -> None:
        for _ in range(attempts):  # another process may take the free port first
            self.port = _free_port()
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    [str(self.binaries / "postgres"), "-D", str(self.data), "-c", f"port={self.port}",
                     "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={self.socket_dir}",
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                    **self._as_owner())
            if self._wait_ready():
                return
            self._process.kill()
            self._process.wait()
        raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        socket_file = Path(self.socket_dir) / f".s.PGSQL.{self.port}"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if socket_file.exists():
                try:
                    self.execute("SELECT 1", database="postgres")
                    return True
                except Exception:
                    pass
            time.sleep(0.1)
        return False

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([str(self.binaries / program), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, **self._as_owner())
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that run a server program as `postgres` when the tests are root."""
        if self._owner is None:
            return {}
        return {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": [],
                "cwd": self.socket_dir, "env": {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}}


def _parent_death_signal() -> Any:
    """What the server's process runs before it starts (as `postgres`, which cannot import
    modules from the tests' Python: everything is looked up here): a fast shutdown when
    the test process (the thread that started it) dies without stopping it (Linux:
    PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return functools.partial(ctypes.CDLL(None).prctl, 1, int(signal.SIGINT))


_die_with_parent = _parent_death_signal()


def _ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_shared: PostgresServer | None = None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (one per session, shared by every module that
    imports this fixture); stopped and removed when the session ends."""
    global _shared
    binaries = server_binaries()
    assert binaries, "the PostgreSQL server is not installed (Debian's postgresql; make test installs it)"
    if _shared is None:
        _shared = PostgresServer(binaries)
    yield _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
