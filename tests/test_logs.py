"""Logging: console and file, and no credential ever written."""

from __future__ import annotations

import logging

from engine.logs import setup_logging


def test_credentials_are_masked_in_every_log_line(tmp_path, capsys):
    log_file = tmp_path / "pipeline.log"
    setup_logging("INFO", log_file)
    log = logging.getLogger("engine.test")
    log.warning("lineage backend http://marquez:s3cr3t@lineage.internal:5000/api failed")
    log.warning("headers Authorization: Bearer abc.def-123 and api_key=XYZ987, token: 'tok42'")
    log.info("scheduler %s", "tls://user:pw@10.1.2.3:8786")
    written = log_file.read_text() + capsys.readouterr().err
    for secret in ("s3cr3t", "abc.def-123", "XYZ987", "tok42", "user:pw"):
        assert secret not in written
    assert "http://***:***@lineage.internal:5000/api" in written
    assert "Bearer ***" in written and "api_key=***" in written
    assert written.count("\n") == 6  # three lines, each on the console and in the file
