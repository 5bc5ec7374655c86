"""The audit log: real runs in real processes, one whole JSON line each, and `engine audit`."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import engine_command, run_cli, write_csv
from engine.governance.audit import AuditLog, default_audit_path, read_records
from engine.rules.pseudonyms import KEY_ENV

USER = pwd.getpwuid(os.geteuid()).pw_name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_concurrent_runs_append_two_whole_lines(tmp_path):
    audit = tmp_path / "state" / "audit.jsonl"
    env = {**os.environ, "ENGINE__AUDIT__PATH": str(audit)}
    runs = []
    for name in ("north", "south"):
        data = tmp_path / f"{name}.csv"
        assert run_cli("generate", str(data), "--rows", "20000", "--seed", str(len(name))).returncode == 0
        runs.append((data, tmp_path / f"out-{name}"))
    processes = [subprocess.Popen(engine_command("run", str(data), "--output", str(out)), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for data, out in runs]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    lines = audit.read_text().splitlines()
    assert len(lines) == 2
    records = {record["run_id"]: record for record in map(json.loads, lines)}
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.parent.stat().st_mode) == 0o700
    for data, out in runs:
        run_id = json.loads((out / "run_report.json").read_text())["run_id"]
        record = records[run_id]
        assert record["operation"] == "run" and record["outcome"] == "success" and record["exit_code"] == 0
        assert record["user"] == USER and record["host"] == socket.gethostname()
        assert record["time"].endswith("Z") and record["error"] is None
        assert record["inputs"] == [{"path": str(data.resolve()), "size": data.stat().st_size,
                                     "sha256": _sha256(data)}]
        outputs = {Path(o["path"]).name: o for o in record["outputs"]}
        assert set(outputs) >= {"daily_sales_summary.csv", "trend_analysis.json", "run_report.json"}
        for name, output in outputs.items():
            assert output["sha256"] == _sha256(out / name) and output["size"] == (out / name).stat().st_size
        assert record["details"]["output"] == str(out.resolve()) and record["details"]["mode"] == "pandas"


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from engine.governance.audit import AuditLog

    writer, count, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = AuditLog(Path(sys.argv[1])).open()
    for number in range(count):
        log.append({"time": "2024-01-01T00:00:00Z", "operation": "test", "writer": writer, "number": number,
                    "payload": writer * size})
    log.close()
""")


def test_concurrent_writers_never_interleave_or_lose_a_line(tmp_path):
    """Four processes append 40 records of 200 KB each at the same time: far more than
    one pipe buffer or page per write, so only the lock keeps the lines whole."""
    audit = tmp_path / "audit.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(audit), letter, "40", "200000"])
               for letter in "abcd"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    records = read_records(audit)
    assert len(records) == 160
    for letter in "abcd":
        mine = [r for r in records if r["writer"] == letter]
        assert [r["number"] for r in mine] == list(range(40))
        assert all(r["payload"] == letter * 200000 for r in mine)


def test_a_failed_run_is_recorded_with_its_exit_code_and_error(tmp_path):
    audit = tmp_path / "audit.jsonl"
    missing = tmp_path / "absent.csv"
    done = run_cli("run", str(missing), "--output", str(tmp_path / "out"), env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 3
    [record] = _records(audit)
    assert record["operation"] == "run" and record["outcome"] == "failed" and record["exit_code"] == 3
    assert str(missing) in record["error"] and record["inputs"] == [] and record["outputs"] == []


def test_a_run_failed_by_an_alert_records_the_outputs_it_published(tmp_path):
    audit = tmp_path / "audit.jsonl"
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "1.00", ""), ("2024-01-02", "P2", "", "")])
    config = tmp_path / "c.yaml"
    config.write_text("alerts:\n  max_null_count: 0\n  fail_on_alert: true\n")
    env = {"ENGINE__AUDIT__PATH": str(audit)}
    out = tmp_path / "out"
    passed = run_cli("run", str(data), "--output", str(out), env=env)
    assert passed.returncode == 0, passed.stderr
    done = run_cli("run", str(data), "--output", str(out), "--config", str(config), env=env)
    assert done.returncode == 4
    succeeded, failed = _records(audit)
    assert failed["outcome"] == "failed" and failed["exit_code"] == 4 and "high_null_count" in failed["error"]
    assert failed["inputs"][0]["sha256"] == _sha256(data)
    published = {Path(o["path"]).name: o["sha256"] for o in failed["outputs"]}
    assert published.keys() == {Path(o["path"]).name for o in succeeded["outputs"]}
    assert {"data_quality_metrics.json", "daily_sales_summary.parquet", "run_report.json"} <= published.keys()
    for name, sha in published.items():
        assert sha == _sha256(out / name)


def test_anonymize_is_recorded(tmp_path):
    audit = tmp_path / "audit.jsonl"
    source = write_csv(tmp_path / "in.csv", [("2024-01-01", "P1", "1.00", "C1")])
    target = tmp_path / "anon.csv"
    done = run_cli("anonymize", str(source), str(target),
                   env={"ENGINE__AUDIT__PATH": str(audit), KEY_ENV: "0123456789abcdef-test-key"})
    assert done.returncode == 0, done.stderr
    [record] = _records(audit)
    assert record["operation"] == "anonymize" and record["outcome"] == "success"
    assert record["inputs"] == [{"path": str(source), "size": source.stat().st_size, "sha256": _sha256(source)}]
    assert record["outputs"] == [{"path": str(target), "size": target.stat().st_size, "sha256": _sha256(target)}]


def test_an_audit_log_that_cannot_be_opened_stops_the_run_before_it_starts(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "1.00", "C1")])
    blocked = tmp_path / "audit-is-a-folder"
    blocked.mkdir()
    done = run_cli("run", str(data), "--output", str(tmp_path / "out"), env={"ENGINE__AUDIT__PATH": str(blocked)})
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {blocked}: cannot open the audit log (Is a directory)")
    assert not (tmp_path / "out").exists()


def _fabricated_log(path: Path) -> list[dict]:
    records = [
        {"time": "2024-03-01T02:00:00.000Z", "user": "etl", "host": "h1", "operation": "backup.create",
         "run_id": "aaaa-1", "inputs": [{"path": "/srv/out", "size": 2048}], "outputs": [{"path": "/b/x", "size": 10}],
         "outcome": "success", "exit_code": 0},
        {"time": "2024-03-01T09:30:00.000Z", "user": "alice", "host": "h1", "operation": "run", "run_id": "bbbb-2",
         "inputs": [{"path": "/d/s.csv", "size": 5 * 2**20}], "outputs": [], "outcome": "failed", "exit_code": 3},
        {"time": "2024-03-02T09:30:00.000Z", "user": "alice", "host": "h2", "operation": "run", "run_id": "cccc-3",
         "inputs": [], "outputs": [], "outcome": "success", "exit_code": 0},
        {"time": "2024-03-03T02:00:00.000Z", "user": "etl", "host": "h1", "operation": "backup.prune",
         "run_id": "dddd-4", "inputs": [], "outputs": [], "outcome": "success", "exit_code": 0},
    ]
    log = AuditLog(path).open()
    for record in records:
        log.append(record)
    log.close()
    return records


@pytest.mark.parametrize(("filters", "expected"), [
    ((), ["aaaa-1", "bbbb-2", "cccc-3", "dddd-4"]),
    (("--operation", "backup"), ["aaaa-1", "dddd-4"]),
    (("--operation", "backup.prune"), ["dddd-4"]),
    (("--user", "alice", "--outcome", "success"), ["cccc-3"]),
    (("--since", "2024-03-01T09:00:00", "--until", "2024-03-02"), ["bbbb-2", "cccc-3"]),
    (("--run-id", "bbbb"), ["bbbb-2"]),
    (("--last", "2"), ["cccc-3", "dddd-4"]),
])
def test_audit_command_filters(tmp_path, filters, expected):
    audit = tmp_path / "audit.jsonl"
    records = {r["run_id"]: r for r in _fabricated_log(audit)}
    env = {"ENGINE__AUDIT__PATH": str(audit)}
    done = run_cli("audit", "--json", *filters, env=env)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [records[i] for i in expected]


def test_audit_command_prints_a_table(tmp_path):
    audit = tmp_path / "audit.jsonl"
    _fabricated_log(audit)
    done = run_cli("audit", "--operation", "run", env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["time", "(UTC)", "user", "host", "operation", "run", "id", "outcome", "exit",
                              "inputs", "outputs"]
    assert rows[0].split() == ["2024-03-01", "09:30:00", "alice", "h1", "run", "bbbb-2", "failed", "3",
                               "1", "(5.0", "MiB)", "-"]
    assert len(rows) == 2


def test_audit_command_names_a_damaged_line(tmp_path):
    audit = tmp_path / "audit.jsonl"
    _fabricated_log(audit)
    with open(audit, "a") as handle:
        handle.write('{"time": "2024-03-04T00:00:00Z", "operat\n')
    done = run_cli("audit", env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 3
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {audit}: line 5: not an audit record")


def test_the_default_log_is_one_per_installation_user_under_the_xdg_state_folder(tmp_path):
    assert default_audit_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "sales-engine" / "audit.jsonl"
    assert default_audit_path({}) == Path.home() / ".local" / "state" / "sales-engine" / "audit.jsonl"


# --- where the log is, and which runs are whose ---------------------------------------------

STARTED = "engine.audit: audit log started at"


def _without_audit_variable(**extra: str) -> dict:
    """The environment of a user who has not set ENGINE__AUDIT__PATH (the tests set it)."""
    return {**{k: v for k, v in os.environ.items() if k != "ENGINE__AUDIT__PATH"}, "PYTHONUNBUFFERED": "1", **extra}


def test_the_default_log_names_itself_and_its_per_user_scope_when_it_starts(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "1.00", "C1")])
    env = _without_audit_variable(XDG_STATE_HOME=str(tmp_path / "state"))
    done = subprocess.run(engine_command("run", str(data), "--output", str(tmp_path / "out")), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    default = tmp_path / "state" / "sales-engine" / "audit.jsonl"
    [line] = [line for line in done.stderr.splitlines() if STARTED in line]
    assert line.split()[2] == "INFO"
    assert f"{STARTED} {default}: the default for OS user {USER}, it records this user's runs" in line
    assert "engine audit --output FOLDER" in line
    assert [r["operation"] for r in _records(default)] == ["run"]


def test_a_configured_log_is_named_once_by_the_process_that_starts_it(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "1.00", "C1")])
    audit = tmp_path / "logs" / "audit.jsonl"
    env = {"ENGINE__AUDIT__PATH": str(audit)}
    first = run_cli("run", str(data), "--output", str(tmp_path / "out"), env=env)
    second = run_cli("run", str(data), "--output", str(tmp_path / "out"), env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert [line.split(" ", 2)[2] for line in first.stderr.splitlines() if STARTED in line] == [
        f"INFO    {STARTED} {audit} (audit.path)"]
    assert f"{STARTED} {audit} (audit.path)" in (tmp_path / "out" / "pipeline.log").read_text()
    assert STARTED not in second.stderr  # the log existed already
    assert len(_records(audit)) == 2


def test_audit_command_keeps_the_runs_of_one_output_folder(tmp_path):
    """Two projects' runs share the default log; `--output` picks one folder's runs, named
    relative to the working folder or through a link, as the run resolved it."""
    audit = tmp_path / "audit.jsonl"
    env = {"ENGINE__AUDIT__PATH": str(audit)}
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "1.00", "C1")])
    (tmp_path / "project-b").mkdir()
    (tmp_path / "link-to-b").symlink_to(tmp_path / "project-b")
    for output in ("project-a/out", "link-to-b/out", "project-a/out"):
        done = run_cli("run", str(data), "--output", output, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    runs = _records(audit)
    folder_a, folder_b = (str((tmp_path / project / "out").resolve()) for project in ("project-a", "project-b"))
    a_runs = [r["run_id"] for r in runs if r["details"]["output"] == folder_a]
    assert len(a_runs) == 2 and runs[1]["details"]["output"] == folder_b

    def selected(folder: str, cwd: Path) -> list[str]:
        done = run_cli("audit", "--json", "--output", folder, cwd=cwd, env=env)
        assert done.returncode == 0, done.stderr
        return [json.loads(line)["run_id"] for line in done.stdout.splitlines()]

    assert selected("project-a/out", tmp_path) == a_runs
    assert selected("out", tmp_path / "project-a") == a_runs
    assert selected(str(tmp_path / "link-to-b" / "out"), tmp_path) == [runs[1]["run_id"]]
    assert selected("project-c/out", tmp_path) == []
    table = run_cli("audit", "--output", "project-a/out", cwd=tmp_path, env=env)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3  # the header and two runs


def test_until_records_the_input_it_read_with_its_sha256(tmp_path):
    """`--until` reads the input (personal data): its record names each file and its SHA-256,
    and a file given on standard input too, by the digest taken while it was copied."""
    audit = tmp_path / "audit.jsonl"
    sales = write_csv(tmp_path / "sales.csv", [["2024-01-01", "P1", "10.00", "C1"], ["2024-01-02", "P2", "5.00", ""]])
    env = {"ENGINE__AUDIT__PATH": str(audit)}
    done = run_cli("run", str(sales), "--until", "daily_sales_summary", env=env)
    assert done.returncode == 0, done.stderr
    with open(sales, "rb") as piped:
        fed = subprocess.run(engine_command("run", "-", "--until", "daily_sales_summary"), stdin=piped,
                             capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert fed.returncode == 0, fed.stderr
    first, second = _records(audit)
    assert first["operation"] == second["operation"] == "run.until"
    assert [(i["path"], i["sha256"]) for i in first["inputs"]] == [(str(sales.resolve()), _sha256(sales))]
    assert [(i["path"], i["sha256"]) for i in second["inputs"]] == [("/dev/stdin", _sha256(sales))]
