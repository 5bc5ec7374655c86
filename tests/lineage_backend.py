"""A real OpenLineage HTTP backend (Marquez-like) for tests, on 127.0.0.1.

``LineageBackend`` runs a stdlib ``ThreadingHTTPServer`` on a free port in a
background thread. It accepts ``POST /api/v1/lineage`` with a JSON body (plain
or ``Content-Encoding: gzip``), validates each event against the official
OpenLineage schemas when they are available (see ``openlineage_schemas``),
stores it and answers ``201 Created`` like Marquez.

Misbehaviours for failure tests:

* ``fail_first=N``  answer HTTP 500 to the first N POSTs, then recover;
* ``failing``       answer HTTP 500 to every POST while True (settable at runtime);
* ``delay=seconds`` sleep before answering any POST (a slow backend);
* ``refuse=status``  answer that status (e.g. 422, 429) with ``refusal_body`` to every
  event ``refuse_when(event)`` holds for (default: every event), storing it in
  ``refused`` instead of ``events`` (a backend refusing what it does not accept).

Usage::

    with LineageBackend(fail_first=1) as backend:
        client = OpenLineageClient(config={"transport": {"type": "http", "url": backend.url}})
        client.emit(event)
        backend.wait_for(1)

``dead_url()`` gives a URL where nothing listens (connection refused).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:  # imported as ``tests.openlineage_schemas`` or, with tests/ on sys.path, directly
    from .openlineage_schemas import spec_available, validate_event
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from openlineage_schemas import spec_available, validate_event

LINEAGE_PATH = "/api/v1/lineage"
HOST = "127.0.0.1"


class LineageBackend:
    """An in-process OpenLineage backend; see the module docstring."""

    def __init__(
        self,
        *,
        fail_first: int = 0,
        failing: bool = False,
        delay: float = 0.0,
        validate: bool = True,
        reject_invalid: bool = False,
        refuse: int | None = None,
        refusal_body: str = '{"detail": "refused"}',
        refuse_when=None,
    ) -> None:
        """Configure (not start) the backend.

        validate: check events with ``validate_event`` when the spec is available.
        reject_invalid: answer 400 (and store nothing) for events failing validation;
            by default they are stored and their errors recorded in ``validation_errors``.
        """
        self.fail_first = fail_first
        self.failing = failing
        self.delay = delay
        self.validating = validate and spec_available()
        self.reject_invalid = reject_invalid
        self.refuse = refuse
        self.refusal_body = refusal_body
        self.refuse_when = refuse_when or (lambda event: True)
        self._lock = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._refused: list[dict[str, Any]] = []
        self._validation_errors: list[str] = []
        self._requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> LineageBackend:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("LineageBackend already started")
        self._server = _Server((HOST, 0), _Handler, backend=self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lineage-backend-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the server thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> LineageBackend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests read ---------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (only while started)."""
        if self._server is None:
            raise RuntimeError("LineageBackend is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for the OpenLineage HTTP transport, e.g. ``http://127.0.0.1:43567``."""
        return f"http://{HOST}:{self.port}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """A copy of the accepted events (decoded JSON), in arrival order."""
        with self._lock:
            return list(self._events)

    @property
    def received_count(self) -> int:
        """Number of accepted (stored) events."""
        with self._lock:
            return len(self._events)

    @property
    def requests(self) -> int:
        """Number of POSTs to the lineage endpoint, failed ones included."""
        with self._lock:
            return self._requests

    @property
    def refused(self) -> list[dict[str, Any]]:
        """A copy of the events answered with the `refuse` status, in arrival order."""
        with self._lock:
            return list(self._refused)

    @property
    def validation_errors(self) -> list[str]:
        """Schema violations found in received events (one message per bad event)."""
        with self._lock:
            return list(self._validation_errors)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `count` events are stored; return them.

        Raises AssertionError after `timeout` seconds with what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._events) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"lineage backend: expected {count} event(s) within {timeout}s, "
                        f"got {len(self._events)} after {self._requests} POST(s)"
                    )
                self._lock.wait(remaining)
            return list(self._events)

    def clear(self) -> None:
        """Forget stored events, validation errors and the request count."""
        with self._lock:
            self._events.clear()
            self._validation_errors.clear()
            self._requests = 0

    # -- called by the request handler --------------------------------------

    def _count_request(self) -> int:
        """Count a POST; return its 1-based number."""
        with self._lock:
            self._requests += 1
            return self._requests

    def _should_fail(self, number: int) -> bool:
        return self.failing or number <= self.fail_first

    def _validate(self, event: Any) -> str | None:
        """The validation error message for `event`, or None when valid or not validating."""
        if not self.validating:
            return None
        try:
            validate_event(event)
        except AssertionError as error:
            return str(error)
        except Exception as error:  # a validator bug must not kill the server
            return f"validator crashed: {type(error).__name__}: {error}"
        return None

    def _refusal(self, event: Any) -> int | None:
        """The status to refuse `event` with, or None to take it (the refused one is kept)."""
        if self.refuse is None or not self.refuse_when(event):
            return None
        with self._lock:
            self._refused.append(event)
        return self.refuse

    def _receive(self, event: Any) -> HTTPStatus:
        """Validate and store one decoded event; the status to answer."""
        error = self._validate(event)
        with self._lock:
            if error is not None:
                self._validation_errors.append(error)
                if self.reject_invalid:
                    return HTTPStatus.BAD_REQUEST
            self._events.append(event)
            self._lock.notify_all()
        return HTTPStatus.CREATED


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its backend and never prints tracebacks."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, *, backend: LineageBackend) -> None:
        self.backend = backend
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        """Quiet: a client hanging up (e.g. its timeout during `delay`) is not an error."""


class _Handler(BaseHTTPRequestHandler):
    """Serves POST /api/v1/lineage for the owning LineageBackend."""

    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?", 1)[0].rstrip("/") != LINEAGE_PATH:
            self._answer(HTTPStatus.NOT_FOUND)
            return
        backend = self.server.backend
        number = backend._count_request()
        body = self._read_body()
        if backend.delay:
            time.sleep(backend.delay)
        if backend._should_fail(number):
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        try:
            event = json.loads(self._decode(body))
        except (OSError, EOFError, ValueError):  # bad gzip, bad UTF-8 or bad JSON
            self._answer(HTTPStatus.BAD_REQUEST)
            return
        refusal = backend._refusal(event)
        if refusal is not None:
            self._answer(refusal, backend.refusal_body.encode("utf-8"))
            return
        self._answer(backend._receive(event))

    def _read_body(self) -> bytes:
        """The raw request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    def _decode(self, body: bytes) -> str:
        """Undo ``Content-Encoding: gzip`` if present; decode UTF-8."""
        if self.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            body = gzip.decompress(body)
        return body.decode("utf-8")

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: no per-request logging to stderr."""


def dead_url() -> str:
    """URL of a 127.0.0.1 port where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{HOST}:{port}"
