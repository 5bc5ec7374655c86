"""A real S3 API server for tests: moto's `moto_server` on 127.0.0.1.

``S3Server`` starts the venv's ``moto_server -H 127.0.0.1 -p PORT`` console script on a
free port as its own process, waits until it answers, and stops it. What it offers:

* ``environment()``: the variables that point any S3 client at it (dummy credentials,
  ``AWS_ENDPOINT_URL``, no cloud metadata probe, no shared config files);
* ``boto3()`` and ``new_bucket()`` for setting up objects;
* ``recording()``: moto's request recorder (every request's method, URL and headers, so
  a test can tell which process, by its ``User-Agent``, read which bytes);
* ``enforced_auth()``: moto checks credentials and IAM policies inside the block (it
  does not outside it), so a test can be refused access.

``failing_store()`` is the other kind of endpoint: a small HTTP server on 127.0.0.1 that
answers every request with a store's failure (503 SlowDown, 500 InternalError), as S3
does when it is overloaded or broken.

Fixtures, used by importing them into a test module
(``from s3_server import s3, s3_server``):

* ``s3_server``: one server for the session;
* ``s3``: that server, with ``environment()`` set for the test (and so for the ``engine``
  processes the test starts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

try:  # imported with tests/ on sys.path (as pytest does), or as ``tests.s3_server``
    from conftest import free_port
except ImportError:  # pragma: no cover - depends on how the module is imported
    from tests.conftest import free_port

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


class S3Server:
    """A running ``moto_server`` process; see the module docstring."""

    def __init__(self, workdir: Path, timeout: float = 60) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.recording_file = self.workdir / "moto_recording.jsonl"
        executable = Path(sys.executable).parent / "moto_server"
        self._log = open(self.workdir / "moto_server.log", "w")
        self.process = subprocess.Popen(
            [str(executable), "-H", HOST, "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.workdir, start_new_session=True,
            env={**os.environ, "MOTO_RECORDER_FILEPATH": str(self.recording_file)})
        try:
            self._wait_until_answering(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.process.returncode}); see {self._log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto_server on {self.url} did not answer within {timeout} s") from None
                time.sleep(0.2)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def environment(self) -> dict[str, str]:
        """Variables that point S3 clients (botocore, s3fs) at this server, with dummy
        credentials, and keep them from any real account's configuration."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-aws-credentials"),
        }

    def boto3(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client of `service` on this server (credentials: the dummy ones unless given)."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=credentials.get("key", ACCESS_KEY),
                            aws_secret_access_key=credentials.get("secret", SECRET_KEY))

    def new_bucket(self, prefix: str = "bucket") -> str:
        """A new, empty bucket with a unique name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.boto3().create_bucket(Bucket=name)
        return name

    def _post(self, path: str, body: bytes = b"") -> bytes:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()

    @contextmanager
    def recording(self):
        """Record every request in the block; yields a function returning them so far
        (dicts with `method`, `url` and `headers`)."""
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")
        try:
            yield self.recorded
        finally:
            self._post("/moto-api/recorder/stop-recording")

    def recorded(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=10) as answer:
            text = answer.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    @contextmanager
    def enforced_auth(self):
        """Inside the block, moto authenticates every request and applies IAM policies
        (credentials must be an IAM user's access key); outside it, anything goes."""
        self._post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", b"inf")

    def iam_user(self, name: str, actions: list[str]) -> dict[str, str]:
        """An IAM user allowed `actions` (e.g. ["s3:ListBucket"]) on every resource; its
        credentials as storage options (`key`, `secret`)."""
        iam = self.boto3("iam")
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


@contextmanager
def failing_store(status: int = 503, code: str = "SlowDown", message: str = "Please reduce your request rate."):
    """An S3 endpoint on 127.0.0.1 that answers every request with HTTP `status` and S3's
    error document (`code`, `message`; a HEAD gets the status alone, as from S3). Yields
    (its URL, a function returning how many requests it has answered)."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>failing-store</RequestId></Error>").encode()
    answered = []

    class Failing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            answered.append(self.command)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Failing)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="failing-store", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}", lambda: len(answered)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The session's S3 server, its variables set for this test (and the processes it starts)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server
