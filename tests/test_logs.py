"""Logging: console and file, and no credential ever written."""

from __future__ import annotations

import csv
import json
import logging

from conftest import engine_command, run_cli, write_csv
from terminal import run_in_terminal

from engine.logs import bound_run_id, setup_logging


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


def test_json_lines_carry_the_run_id_and_mask_credentials_in_tracebacks(tmp_path, capsys):
    log_file = tmp_path / "logs" / "run.jsonl"
    setup_logging("DEBUG", log_file, log_format="json")
    log = logging.getLogger("engine.test")
    log.debug("before any run")
    with bound_run_id("run-42"):
        log.info("connecting to %s", "http://admin:hunter2@marquez:5000")
        try:
            raise ConnectionError("refused by https://u:topsecret@backend/api")
        except ConnectionError:
            log.exception("lineage backend failed")
    for text in (log_file.read_text(), capsys.readouterr().err):
        entries = [json.loads(line) for line in text.splitlines()]
        assert [e["level"] for e in entries] == ["DEBUG", "INFO", "ERROR"]
        assert all(set(e) >= {"time", "level", "logger", "message"} and e["logger"] == "engine.test" for e in entries)
        assert "run_id" not in entries[0] and entries[1]["run_id"] == entries[2]["run_id"] == "run-42"
        assert entries[1]["message"] == "connecting to http://***:***@marquez:5000"
        assert "Traceback" in entries[2]["exception"] and "https://***:***@backend/api" in entries[2]["exception"]
        assert "hunter2" not in text and "topsecret" not in text


def test_a_run_at_debug_level_logs_no_customer_id_and_json_everywhere(tmp_path, dirty_300k):
    """A real run in dask mode at DEBUG, with progress lines and a custom log file: every
    console and file line is a JSON object of the run, and no customer id of the input
    appears in any of them."""
    data = tmp_path / "sales.csv"
    with open(dirty_300k, encoding="utf-8") as source, open(data, "w", encoding="utf-8") as head:
        head.writelines(line for _, line in zip(range(40_001), source))
    customer_ids = {row["customer_id"].strip() for row in csv.DictReader(open(data, encoding="utf-8"))
                    if row["customer_id"] and row["customer_id"].strip()}
    assert len(customer_ids) > 1000
    out, log_file = tmp_path / "out", tmp_path / "logs" / "engine.jsonl"
    done = run_cli("run", str(data), "--output", str(out), "--mode", "dask", "--partition-size", "256KiB",
                   "--log-level", "DEBUG", "--log-format", "json", "--log-file", str(log_file),
                   env={"ENGINE__PROGRESS__INTERVAL": "0.1"})
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    written = log_file.read_text()
    for text in (written, done.stderr):
        entries = [json.loads(line) for line in text.splitlines()]
        assert entries and all(e["run_id"] == run_id for e in entries)
        assert {e["level"] for e in entries} >= {"DEBUG", "INFO"}
    assert any(e["logger"] == "engine.progress" for e in map(json.loads, written.splitlines()))
    assert not (out / "pipeline.log").exists()  # the log went where it was told
    assert not any(customer in written + done.stderr for customer in customer_ids)


def test_console_colours_only_on_a_terminal(tmp_path):
    data = tmp_path / "sales.csv"
    write_csv(data, [("2024-01-01", "P1", "10.00", "C1")] * 3)
    done = run_cli("run", str(data), "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    assert "INFO    engine.run" in done.stderr and "\x1b[" not in done.stderr + done.stdout
    status, screen = run_in_terminal(engine_command("run", str(data), "--output", str(tmp_path / "out2"),
                                                    "--mode", "pandas"))
    assert status == 0, screen
    assert "\x1b[32mINFO   \x1b[0m engine.run" in screen
