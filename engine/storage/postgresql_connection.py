"""A PostgreSQL database as the engine reaches it, for the source (engine.storage.postgresql)
and the sink (engine.storage.postgresql_sink) alike.

- `Endpoint`: the database a `postgresql://` URL names; it connects, names the database
  without its password (in errors, logs, reports and lineage) and turns the driver's
  failures into the engine's errors and exit codes;
- `driver()`: the ADBC driver (`adbc-driver-postgresql`), or a usage error (exit 2) that
  says what to install;
- `ident()`: a name as a quoted SQL identifier.

Connecting: a database that does not exist is the input's fault (3) for a source, the
service's (5) for a sink; a refused login or an unreachable server is the service's (5).
Credentials come from the URL, PGPASSWORD or ~/.pgpass (libpq reads them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from urllib.parse import unquote, urlsplit

from engine.errors import ConfigurationError, EngineError, InputDataError, ServiceError
from engine.observability.logs import mask_credentials

INSTALL_HINT = "pip install 'sales-engine[postgresql]'"
#: libpq settings a connection gets unless the URL gives them
CONNECTION_DEFAULTS = {"connect_timeout": "10", "application_name": "sales-engine"}
DEFAULT_PORT = 5432
#: SQLSTATE classes of a server that cannot serve (connection, login, resources, shutdown, internal)
SERVICE_STATES = ("08", "28", "53", "57", "58", "XX")


def driver() -> ModuleType:
    """The ADBC driver's DB-API module; a ConfigurationError naming the package when it is
    not installed."""
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError:
        raise ConfigurationError(f"PostgreSQL needs the ADBC driver: {INSTALL_HINT}") from None
    return dbapi


def ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Endpoint:
    """A PostgreSQL database as its URL names it. The URL may hold a password: it is
    used to connect and never shown (`shown` is the URL without it)."""

    url: str = field(repr=False)

    @property
    def shown(self) -> str:
        """`postgresql://user@host:port/db`: no password, no query parameters."""
        parts = urlsplit(self.url)
        user, at, host = parts.netloc.rpartition("@")
        user = user.partition(":")[0]
        return f"{parts.scheme}://{user}{at}{host}{parts.path}"

    @property
    def namespace(self) -> str:
        """The OpenLineage namespace of the server: `postgres://host:port`."""
        host = urlsplit(self.url).netloc.rpartition("@")[2] or "localhost"
        if not re.search(r":\d+$", host) and "," not in host:
            host = f"{host}:{DEFAULT_PORT}"
        return f"postgres://{host}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password as the URL writes it and as it reads (for masking)."""
        password = urlsplit(self.url).password
        return tuple({password, unquote(password)} - {""}) if password else ()

    def connection_uri(self) -> str:
        """The URL with the engine's libpq defaults (CONNECTION_DEFAULTS) it does not set."""
        parts = urlsplit(self.url)
        given = {pair.partition("=")[0] for pair in parts.query.split("&") if pair}
        extra = "&".join(f"{key}={value}" for key, value in CONNECTION_DEFAULTS.items() if key not in given)
        if not extra:
            return self.url
        return f"{self.url.split('#')[0]}{'&' if parts.query else '?'}{extra}"

    def connect(self, where: str | None = None, *, sink: bool = False, autocommit: bool = True):
        """An ADBC connection; failing to connect is a one-line error naming `where` (the
        database by default): a database that does not exist is the input's fault (3),
        unless it is a sink's; anything else is the service's (5)."""
        dbapi = driver()
        where = where or self.shown
        try:
            return dbapi.connect(self.connection_uri(), autocommit=autocommit)
        except dbapi.Error as error:
            reason = self.reason(error)
            if not sink and re.search(r'database ".*" does not exist', reason):
                raise InputDataError(f"{where}: {reason}") from None
            if re.search(r"authentication|password|pg_hba|role .* does not exist", reason):
                raise ServiceError(f"{where}: PostgreSQL refused the login ({reason}; the password comes "
                                   "from the URL, PGPASSWORD or ~/.pgpass)") from None
            raise ServiceError(f"{where}: cannot connect to PostgreSQL ({reason})") from None

    def reason(self, error: BaseException) -> str:
        """The server's or libpq's words for `error`, on one line, without any credential."""
        text = str(error).split("Query was:")[0]
        found = list(re.finditer(r"\b(?:ERROR|FATAL):\s+", text))
        if found:
            text = text[found[-1].end():]
        else:
            text = re.sub(r"^.*?Failed to connect:\s*(connection to server .*? failed:\s*)?", "", text, flags=re.S)
        text = re.split(r"\nLINE \d+:|\n\s*Is the server|\s*\.?\s*SQLSTATE: \w+", text)[0]
        text = " ".join(text.split()) or type(error).__name__
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return mask_credentials(text)[:300]

    def failure(self, error: BaseException, where: str, *, sink: bool = False) -> EngineError:
        """The engine's error for a statement that failed on `where` (a dataset or sink name):
        the service's (5) for a sink or a server that cannot serve, else the input's (3)."""
        state = getattr(error, "sqlstate", None) or ""
        reason = self.reason(error)
        if sink or not state or state.startswith(SERVICE_STATES):
            return ServiceError(f"{where}: {reason}")
        return InputDataError(f"{where}: {reason}")

    @contextmanager
    def statements(self, where: str, *, sink: bool = False) -> Iterator[None]:
        """Driver errors inside the block become the engine's errors naming `where`."""
        dbapi = driver()
        try:
            yield
        except dbapi.Error as error:
            raise self.failure(error, where, sink=sink) from None
