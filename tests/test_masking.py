"""Credentials in URLs never reach a log line: query parameters such as access_token
(Pushgateway and OpenLineage URLs, urllib3's own retry warnings) and passwords that
contain `@`."""

from __future__ import annotations

import logging

import urllib3

from conftest import free_port

from engine.observability.logs import mask_credentials, setup_logging


def test_query_parameter_credentials_are_masked():
    for text, secret in [
        ("https://gw:9091/metrics/job/x?access_token=SECRET1&b=1", "SECRET1"),
        ("http://marquez/api/v1/lineage?api_key=SECRET2", "SECRET2"),
        ("http://h/p?x=1&Token=SECRET3#frag", "SECRET3"),
        ("http://h/p?apiKey=SECRET4", "SECRET4"),
        ("https://bucket/o?X-Amz-Signature=SECRET5&X-Amz-Credential=SECRET6", "SECRET5"),
        ("https://bucket/o?X-Amz-Signature=SECRET5&X-Amz-Credential=SECRET6", "SECRET6"),
        ("http://h/p?client_secret=SECRET7;password=SECRET8", "SECRET8"),
        ("http://h/p?key=SECRET9", "SECRET9"),
        ("http://h/p?sig=SECRET10", "SECRET10"),
    ]:
        masked = mask_credentials(text)
        assert secret not in masked, masked
        assert "=***" in masked
    assert mask_credentials("http://h/p?page=2&design=blue") == "http://h/p?page=2&design=blue"
    assert mask_credentials("GET /x?access_token=abc&b=1").endswith("access_token=***&b=1")


def test_a_password_containing_at_signs_is_masked_whole():
    assert mask_credentials("lineage at http://bob:p@ss@host:5000/api") == "lineage at http://***:***@host:5000/api"
    assert mask_credentials("tls://u:a@b@c@10.0.0.1:8786 and tcp://h:1") == "tls://***:***@10.0.0.1:8786 and tcp://h:1"
    assert "ss@" not in mask_credentials("http://bob:p@ss@host")


def test_urllib3_retry_warnings_and_failed_pushes_are_masked(tmp_path, capsys):
    """Real requests to a port where nothing listens: urllib3 logs its retries itself
    (through the root logger), the Pushgateway push logs its failure."""
    from engine.observability.prometheus_export import failure_registry, push

    log_file = tmp_path / "pipeline.log"
    setup_logging("INFO", log_file)
    port = free_port()
    pool = urllib3.PoolManager(retries=urllib3.Retry(total=1, backoff_factor=0), timeout=2)
    try:
        pool.request("GET", f"http://127.0.0.1:{port}/api/v1/lineage?access_token=RETRYSECRET")
    except urllib3.exceptions.MaxRetryError:
        pass
    gateway = f"http://pusher:PUSH@SECRET@127.0.0.1:{port}/?apikey=GATEWAYSECRET"
    assert push(failure_registry(1, None, 0, "job"), gateway, "job", timeout=2) is False
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text() + capsys.readouterr().err
    assert "Retrying" in written and "access_token=***" in written  # urllib3's own warning, masked
    assert "metrics not pushed" in written
    for secret in ("RETRYSECRET", "GATEWAYSECRET", "PUSH", "SECRET@"):
        assert secret not in written, written
