"""Logging: console and file, and no credential ever written."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys

import pytest

from conftest import engine_command, run_cli, write_csv
from terminal import run_in_terminal

from engine.observability.logs import bound_run_id, setup_logging


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


def test_in_json_mode_every_stderr_line_is_json_including_the_final_error(tmp_path):
    missing = tmp_path / "absent\nerror: forged.csv"
    done = run_cli("run", str(missing), "--output", str(tmp_path / "out"), "--log-format", "json")
    assert done.returncode == 3
    entries = [json.loads(line) for line in done.stderr.splitlines()]  # every line, the last included
    last = entries[-1]
    assert set(last) >= {"time", "level", "logger", "message", "run_id", "exit_code"}
    assert last["exit_code"] == 3 and last["level"] == "ERROR" and last["message"].startswith("error: ")
    assert str(missing) in last["message"]
    # before logging is set up (a usage error), --log-format json still gives JSON
    usage = run_cli("run", str(missing), "--workers", "many", "--log-format", "json")
    assert usage.returncode == 2
    [line] = usage.stderr.splitlines()
    assert json.loads(line)["exit_code"] == 2


def test_a_file_name_with_a_newline_cannot_forge_a_log_line(tmp_path):
    data = write_csv(tmp_path / "in\n2024-01-01 00:00:00,000 ERROR   engine.run: FORGED\x1b[2J.csv",
                     [("2024-01-01", "P1", "10.00", "C1")] * 3)
    out = tmp_path / "out"
    done = run_cli("run", str(data), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    for text in (done.stderr, (out / "pipeline.log").read_text(), done.stdout):
        assert "\x1b" not in text
        assert not any(line.startswith("2024-01-01 00:00:00,000") for line in text.splitlines())
    assert "in\\n2024-01-01 00:00:00,000 ERROR   engine.run: FORGED\\x1b[2J.csv" in done.stderr
    failed = run_cli("run", str(tmp_path / "gone\nFORGED"), "--output", str(out))
    assert failed.returncode == 3
    assert failed.stderr.splitlines()[-1].startswith("error: ") and "gone\\nFORGED" in failed.stderr
    assert not any(line.startswith("FORGED") for line in failed.stderr.splitlines())


def test_until_prints_no_terminal_escape_sequences_from_the_data(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "\x1b]0;owned\x07\x1b[31mP1", "10.00", "C1"),
                                              ("2024-01-02", "P2\x08X\x9b2J", "20.00", "C2")])
    done = run_cli("run", str(data), "--until", "raw_sales_data", "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout + done.stderr for c in "\x1b\x07\x08\x9b")
    assert "\\x1b]0;owned\\x07\\x1b[31mP1" in done.stdout and "P2\\x08X\\x9b2J" in done.stdout


def test_control_characters_are_escaped_in_text_log_lines(tmp_path, capsys):
    log_file = tmp_path / "pipeline.log"
    setup_logging("INFO", log_file)
    log = logging.getLogger("engine.test")
    log.warning("product %s", "P1\nFAKE line\x1b[31m\x85\u2028end")
    written = log_file.read_text() + capsys.readouterr().err
    assert written.count("\n") == 2 and len(written.splitlines()) == 2
    assert "P1\\nFAKE line\\x1b[31m\\x85\\u2028end" in written


@pytest.mark.slow  # starts a LocalCluster
@pytest.mark.parametrize("level", ["ERROR", "INFO"])
def test_a_local_cluster_logs_at_the_engines_level(tmp_path, level):
    """dask.distributed configures its loggers when imported (INFO, its own handler): a
    LocalCluster's scheduler and nanny, which run in the engine's process, still log only
    what the engine's level lets through, and its INFO chatter not at all below DEBUG."""
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "10.00", "C1")] * 3)
    out = tmp_path / "out"
    done = run_cli("run", str(data), "--output", str(out), "--mode", "distributed", "--workers", "1",
                   "--log-level", level)
    assert done.returncode == 0, done.stderr
    written = (out / "pipeline.log").read_text()
    for text in (written, done.stderr):
        assert "distributed." not in text  # "Lost all workers", "please install jupyter-server-proxy", ...
    if level == "ERROR":
        assert written == "" and done.stderr == ""
    else:
        assert "INFO    engine.backends: dask.distributed: embedded LocalCluster" in written


def test_other_libraries_obey_the_level_even_when_imported_first(tmp_path):
    """distributed imported before logging is set up has given its loggers a stderr
    handler of its own; the engine's setup routes them through its own handlers."""
    log_file = tmp_path / "pipeline.log"
    script = f"""
import logging
import distributed  # configures its loggers: INFO, a stderr handler, not propagating
from pathlib import Path
from engine.observability.logs import setup_logging

setup_logging("WARNING", Path({str(log_file)!r}), log_format="json")
logging.getLogger("distributed.scheduler").info("State start")
logging.getLogger("distributed.scheduler").warning("scheduler trouble at http://u:secret@host")
logging.getLogger("tornado.application").error("tornado broke")
logging.getLogger("some.library").info("library detail")
logging.getLogger("engine.test").info("engine detail")
logging.getLogger("engine.test").warning("engine warning")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for text in (log_file.read_text(), done.stderr):
        entries = [json.loads(line) for line in text.splitlines()]  # every line through the engine's handlers
        assert [(e["logger"], e["message"]) for e in entries] == [
            ("distributed.scheduler", "scheduler trouble at http://***:***@host"),
            ("tornado.application", "tornado broke"),
            ("engine.test", "engine warning")]


def test_debug_shows_the_chatter_of_distributed(tmp_path, capsys):
    import distributed  # noqa: F401 - it gives its loggers their INFO level

    setup_logging("DEBUG", tmp_path / "pipeline.log")
    logging.getLogger("distributed.scheduler").info("State start")
    assert "INFO    distributed.scheduler: State start" in (tmp_path / "pipeline.log").read_text()
    assert "distributed.scheduler: State start" in capsys.readouterr().err
