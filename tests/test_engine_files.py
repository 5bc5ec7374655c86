"""The files the engine appends to outside its staged outputs (the log, the run history,
the lineage record and pending events, the audit log): planted symbolic links are refused
and their targets left untouched, existing files get the permission policy, and lines
the engine cannot read (a torn line, a missing field) are skipped with a warning."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import run_cli, write_csv
from lineage_backend import LineageBackend

ROWS = [("2024-01-01", "P1", "10.00", "C1"), ("2024-01-02", "P2", "20.00", "C2"), ("2024-01-03", "P1", "5.00", "C3")]


def _data(tmp_path):
    return write_csv(tmp_path / "sales.csv", ROWS)


def _victim(tmp_path):
    """A file a planted link points at: its bytes and mode must never change."""
    target = tmp_path / "victim" / "precious.txt"
    target.parent.mkdir()
    target.write_bytes(b"precious bytes\n")
    target.chmod(0o644)
    return target


def _snapshot(path):
    return path.read_bytes(), stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name, what", [("pipeline.log", "the log file"), ("run_history.jsonl", "the run history")])
def test_a_planted_link_in_the_output_folder_is_refused_and_its_target_untouched(tmp_path, name, what):
    target, out = _victim(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(target)
    before = _snapshot(target)
    done = run_cli("run", str(_data(tmp_path)), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 2, done.stderr  # a ConfigurationError
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(out / name) in last and "symbolic link" in last and what in last
    assert _snapshot(target) == before
    assert (out / name).is_symlink()
    assert not (out / "daily_sales_summary.csv").exists()  # nothing published


def test_a_planted_audit_log_link_stops_the_command_before_it_does_anything(tmp_path):
    target = _victim(tmp_path)
    audit = tmp_path / "state" / "audit.jsonl"
    audit.parent.mkdir()
    audit.symlink_to(target)
    before = _snapshot(target)
    done = run_cli("run", str(_data(tmp_path)), "--output", str(tmp_path / "out"), "--mode", "pandas",
                   env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert str(audit) in last and "symbolic link" in last
    assert _snapshot(target) == before


def test_planted_lineage_links_are_never_written_through(tmp_path, isolated_openlineage_config):
    """Lineage never fails a run: the record link is reported (a warning naming it) and
    left alone; `lineage replay` refuses a pending link (exit 2)."""
    target, out = _victim(tmp_path), tmp_path / "out"
    (out / "lineage").mkdir(parents=True)
    (out / "lineage" / "events.jsonl").symlink_to(target)
    before = _snapshot(target)
    done = run_cli("run", str(_data(tmp_path)), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    assert f"{out / 'lineage' / 'events.jsonl'}: the lineage record is a symbolic link" in done.stderr
    assert _snapshot(target) == before

    (out / "lineage" / "pending.jsonl").symlink_to(target)
    with LineageBackend() as backend:
        replay = run_cli("lineage", "replay", "--output", str(out), env={"OPENLINEAGE_URL": backend.url})
        assert backend.received_count == 0
    assert replay.returncode == 2, replay.stderr
    assert f"{out / 'lineage' / 'pending.jsonl'}: the pending lineage events file is a symbolic link" in replay.stderr
    assert _snapshot(target) == before


def test_files_the_engine_appends_to_get_the_permission_policy(tmp_path, isolated_openlineage_config):
    out = tmp_path / "out"
    (out / "lineage").mkdir(parents=True)
    appended = [out / "pipeline.log", out / "run_history.jsonl", out / "lineage" / "events.jsonl"]
    for path in appended:
        path.write_text("")
        path.chmod(0o644)  # world-readable, as a careless umask or a copy left them
    done = run_cli("run", str(_data(tmp_path)), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    for path in appended:
        assert path.stat().st_size > 0, path
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_history_lines_lacking_a_field_are_skipped_with_a_warning(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    history = out / "run_history.jsonl"
    good = {"run_id": "r0", "started_at": "2024-05-01T10:00:00+00:00", "finished_at": "2024-05-01T10:00:01+00:00",
            "status": "success", "exit_code": 0, "error_kind": None, "mode": "pandas", "duration_s": 1.0,
            "rows": {"raw": 3, "cleaned": 3, "rejected": 0}}
    no_start = {k: v for k, v in good.items() if k != "started_at"} | {"run_id": "r1"}
    null_duration = good | {"run_id": "r2", "duration_s": None}
    history.write_text("".join(json.dumps(e) + "\n" for e in (good, no_start, null_duration)) + '{"run_id": "torn')
    for _ in range(2):  # the run after a bad line, and the one after that
        done = run_cli("run", str(_data(tmp_path)), "--output", str(out), "--mode", "pandas")
        assert done.returncode == 0, done.stderr
        assert "line 2 has no started_at; counted in the success rate only" in done.stderr
        assert "line 3 is not a history entry (no duration_s); skipped" in done.stderr
        assert "line 4 is not a history entry (not JSON); skipped" in done.stderr
    lines = history.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines[4:]] == ["success", "success"]
    assert (out / "report.html").exists()


def test_a_torn_pending_line_does_not_block_replay(tmp_path, isolated_openlineage_config):
    out = tmp_path / "out"
    done = run_cli("run", str(_data(tmp_path)), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    events = (out / "lineage" / "events.jsonl").read_text().splitlines()
    assert len(events) >= 2
    pending = out / "lineage" / "pending.jsonl"
    torn = events[0][: len(events[0]) // 2]  # a line cut short by a crash or a full disk
    pending.write_text(torn + "\n" + "".join(line + "\n" for line in events))
    with LineageBackend() as backend:
        replay = run_cli("lineage", "replay", "--output", str(out), env={"OPENLINEAGE_URL": backend.url})
        assert replay.returncode == 0, replay.stderr
        assert f"delivered {len(events)} lineage event(s); 0 still pending" in replay.stdout
        assert [e["eventType"] for e in backend.wait_for(len(events))] == [json.loads(e)["eventType"] for e in events]
    assert "not lineage events (torn or edited)" in replay.stderr
    assert not pending.exists()
    assert (out / "lineage" / "pending.unreadable.jsonl").read_text() == torn + "\n"
    assert not [p for p in (out / "lineage").iterdir() if p.name.endswith(".tmp")]


def test_the_shared_helper_refuses_links_and_special_files(tmp_path):
    from engine.errors import ConfigurationError
    from engine.files.append import open_for_append

    target = _victim(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        open_for_append(link, what="the thing")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        open_for_append(fifo)
    with pytest.raises(IsADirectoryError):
        open_for_append(tmp_path)
    assert _snapshot(target) == (b"precious bytes\n", 0o644)
    fd = open_for_append(tmp_path / "new.log", 0o600)
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "new.log").stat().st_mode) == 0o600
