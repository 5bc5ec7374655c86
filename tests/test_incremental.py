"""Incremental runs: a run over a folder keeps each file's partial figures, and the next
run reads only new and changed files, reuses the others, drops removed ones, and
publishes the same bytes as a `--full` run over the same files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from conftest import PUBLISHED_FILES, engine_command, run_cli, run_engine
from engine.sources import readers

QUARANTINE = "rejected_rows.parquet"
MODES = [("pandas", {}), ("dask", {"partition_size": "64KiB"}),
         ("distributed", {"partition_size": "64KiB", "cluster.workers": 2})]


def _day(folder: Path, day: int, rows: int = 1500) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sales_{day:03d}.csv"
    done = run_cli("generate", str(path), "--rows", str(rows), "--seed", str(day))
    assert done.returncode == 0, done.stderr
    return path


def _outputs(output: Path) -> dict[str, bytes]:
    return {name: (output / name).read_bytes() for name in (*PUBLISHED_FILES, QUARANTINE)}


def _full(folder: Path, output: Path, **settings) -> dict[str, bytes]:
    run_engine(folder, output, **{**settings, "incremental.full": True})
    return _outputs(output)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files whose read tasks run in this process (the real reader, wrapped)."""
    seen: list[str] = []
    real = readers.read_task

    def counted(task, *args, **kwargs):
        seen.append(Path(task.file.path).name)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(readers, "read_task", counted)
    return seen


@pytest.mark.parametrize("mode,settings", MODES, ids=[m for m, _ in MODES])
def test_a_new_day_is_the_only_file_read_and_the_bytes_match_a_full_run(tmp_path, mode, settings, reads):
    days = tmp_path / "days"
    for day in (1, 2, 3):
        _day(days, day)
    first = run_engine(days, tmp_path / "out", mode=mode, **settings)
    assert first.report["incremental"] == {"files_reused": 0, "files_read": 3, "files_removed": 0,
                                           "state_bytes": first.report["incremental"]["state_bytes"]}
    _day(days, 4)
    reads.clear()
    second = run_engine(days, tmp_path / "out", mode=mode, **settings)
    increment = second.report["incremental"]
    assert (increment["files_reused"], increment["files_read"], increment["files_removed"]) == (3, 1, 0)
    assert increment["state_bytes"] > first.report["incremental"]["state_bytes"]
    # the partitions planned (and, on a cluster, sent to the workers) are the new file's
    assert second.report["input"]["partitions"] == 1 < first.report["input"]["partitions"]
    if mode != "distributed":  # read tasks that run in this process
        assert set(reads) == {"sales_004.csv"}
    assert _outputs(tmp_path / "out") == _full(days, tmp_path / "full", mode=mode, **settings)


def test_a_file_rewritten_with_the_same_size_and_time_is_read_again(tmp_path, reads):
    days = tmp_path / "days"
    for day in (1, 2, 3):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    changed = days / "sales_002.csv"
    before = changed.stat()
    lines = changed.read_bytes().split(b"\n")
    date, product, amount, customer = lines[7].split(b",")
    lines[7] = b",".join([date, product, amount[:-1] + (b"7" if amount[-1:] != b"7" else b"8"), customer])
    changed.write_bytes(b"\n".join(lines))
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (changed.stat().st_size, changed.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reads.clear()
    result = run_engine(days, tmp_path / "out")
    assert (result.report["incremental"]["files_read"], result.report["incremental"]["files_reused"]) == (1, 2)
    assert set(reads) == {"sales_002.csv"}
    assert _outputs(tmp_path / "out") == _full(days, tmp_path / "full")


def test_a_removed_file_is_dropped_and_its_partial_pruned(tmp_path, reads):
    days = tmp_path / "days"
    for day in (1, 2, 3, 4):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    partials = tmp_path / "out" / ".state" / "partials"
    assert len(list(partials.iterdir())) == 4
    (days / "sales_003.csv").unlink()
    reads.clear()
    result = run_engine(days, tmp_path / "out")
    state = tmp_path / "out" / ".state"
    assert result.report["incremental"] == {
        "files_reused": 3, "files_read": 0, "files_removed": 1,
        "state_bytes": sum(p.stat().st_size for p in state.rglob("*") if p.is_file())}
    assert reads == [] and len(list(partials.iterdir())) == 3
    assert _outputs(tmp_path / "out") == _full(days, tmp_path / "full")


def test_a_corrupt_or_foreign_partial_is_discarded_with_a_warning(tmp_path, caplog, reads):
    days = tmp_path / "days"
    for day in (1, 2, 3):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    first, second, *_ = sorted((tmp_path / "out" / ".state" / "partials").iterdir())
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside a member: its CRC no longer matches
    first.write_bytes(bytes(data))
    with zipfile.ZipFile(second, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        # a partial that says it was written for another key (zip readers take the last entry)
        archive.writestr("meta.json", json.dumps({"format": 1, "key": "another", "reasons": [], "profile": {},
                                                  "fingerprints": False}))
    reads.clear()
    result = run_engine(days, tmp_path / "out")
    assert result.report["incremental"]["files_read"] == 2 and len(set(reads)) == 2
    warnings = [r.getMessage() for r in caplog.records if "discarding the partial" in r.getMessage()]
    assert len(warnings) == 2
    assert _outputs(tmp_path / "out") == _full(days, tmp_path / "full")


def test_full_reads_every_file_and_a_single_file_input_keeps_no_state(tmp_path, reads):
    days = tmp_path / "days"
    for day in (1, 2):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    reads.clear()
    result = run_engine(days, tmp_path / "out", **{"incremental.full": True})
    assert sorted(set(reads)) == ["sales_001.csv", "sales_002.csv"]
    assert result.report["incremental"]["files_read"] == 2
    single = run_engine(days / "sales_001.csv", tmp_path / "single")
    assert single.report["incremental"] is None and not (tmp_path / "single" / ".state").exists()


def test_a_killed_run_keeps_the_batches_it_finished(tmp_path):
    """SIGKILL part-way through the first run: the next run reuses the files whose batch
    was saved, reads the rest, and publishes what a full run does."""
    days = tmp_path / "days"
    for day in range(1, 21):
        _day(days, day, rows=10_000)
    output = tmp_path / "out"
    partials = output / ".state" / "partials"
    env = {**os.environ, "ENGINE__INCREMENTAL__BATCH_SIZE": "1B"}  # a batch per file
    process = subprocess.Popen([*engine_command("run", str(days), "--output", str(output), "--mode", "pandas")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if partials.is_dir() and len(list(partials.glob("*.zip"))) >= 2:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(list(partials.glob("*.zip")))
    assert 2 <= kept < 20, "the run should have been killed part-way"
    assert not (output / "daily_sales_summary.csv").exists()
    done = subprocess.run([*engine_command("run", str(days), "--output", str(output), "--mode", "pandas")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((output / "run_report.json").read_text())
    assert report["incremental"]["files_reused"] >= kept - 1  # the partial being written at the kill may be lost
    assert report["incremental"]["files_reused"] + report["incremental"]["files_read"] == 20
    assert _outputs(output) == _full(days, tmp_path / "full", mode="pandas")


def test_the_audit_log_gets_each_input_sha256_from_the_state_or_hashes_it(tmp_path):
    """Keys hash content with BLAKE3; the audit log records SHA-256. The state's manifest
    keeps each key's SHA-256, so a reused file's digest comes from it and a changed one
    (same size and time) is hashed again: every recorded digest is the file's own."""
    import hashlib

    days = tmp_path / "days"
    for day in (1, 2, 3):
        _day(days, day)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "ENGINE__AUDIT__PATH": str(audit)}

    def run_and_check():
        done = subprocess.run(engine_command("run", str(days), "--output", str(tmp_path / "out")), env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        record = json.loads(audit.read_text().splitlines()[-1])
        expected = {str(p.resolve()): hashlib.sha256(p.read_bytes()).hexdigest() for p in days.iterdir()}
        assert {i["path"]: i["sha256"] for i in record["inputs"]} == expected
        manifest = json.loads((tmp_path / "out" / ".state" / "manifest.json").read_text())
        assert {path: manifest["sha256"][key] for path, key in manifest["files"].items()} == expected

    run_and_check()
    changed = days / "sales_002.csv"
    before = changed.stat()
    data = bytearray(changed.read_bytes())
    data[-3] = ord("7") if data[-3] != ord("7") else ord("8")
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    _day(days, 4)
    run_and_check()


def test_state_show_and_prune(tmp_path):
    days = tmp_path / "days"
    for day in (1, 2, 3):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    shown = run_cli("state", "show", "--output", str(tmp_path / "out"))
    assert shown.returncode == 0 and "3 partial(s)" in shown.stdout and "sales_002.csv" in shown.stdout
    pruned = run_cli("state", "prune", "--all", "--output", str(tmp_path / "out"))
    assert pruned.returncode == 0 and "removed 3 partial(s)" in pruned.stdout
    result = run_engine(days, tmp_path / "out")
    assert result.report["incremental"]["files_read"] == 3


def test_reused_inputs_are_marked_in_the_lineage(tmp_path, spec):
    from openlineage_schemas import validate_event

    days = tmp_path / "days"
    for day in (1, 2):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    _day(days, 3)
    run_engine(days, tmp_path / "out")
    complete = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()][-1]
    marks = {Path(d["name"]).name: d["inputFacets"]["salesEngineInput"]["reusedPartial"] for d in complete["inputs"]}
    assert marks == {"sales_001.csv": True, "sales_002.csv": True, "sales_003.csv": False}
    validate_event(complete)


def test_column_lineage_of_many_files_names_their_folder(tmp_path, spec):
    """Above 16 input files the column lineage names the input folder once, and each file's
    input dataset links to it (symlinks), instead of every file for every column."""
    from openlineage_schemas import validate_event

    days = tmp_path / "days"
    for day in range(1, 19):
        _day(days, day, rows=200)
    run_engine(days, tmp_path / "out")
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()]
    complete = events[-1]
    validate_event(complete)
    assert len(complete["inputs"]) == 18
    for dataset in complete["inputs"]:
        assert dataset["facets"]["symlinks"]["identifiers"] == [
            {"namespace": "file", "name": str(days.resolve()), "type": "LOCATION"}]
    for output in complete["outputs"]:
        fields = output["facets"]["columnLineage"]["fields"].values()
        assert {f["name"] for column in fields for f in column["inputFields"]} <= {str(days.resolve())}
    assert len((tmp_path / "out" / "lineage" / "events.jsonl").read_bytes()) < 1_000_000


def test_duplicates_across_files_stay_exact_as_days_are_added(tmp_path, caplog):
    """The distinct-record index: a new file that repeats an old one's records adds no
    distinct record; a damaged index is rebuilt, never trusted."""
    days = tmp_path / "days"
    for day in (1, 2):
        _day(days, day)
    run_engine(days, tmp_path / "out")
    # the same records again, and one more: a new file whose records are nearly all duplicates
    (days / "sales_003.csv").write_bytes((days / "sales_001.csv").read_bytes() + b"2024-02-02,P9,1.00,C9\n")
    result = run_engine(days, tmp_path / "out")
    assert result.report["incremental"]["files_read"] == 1
    full = _full(days, tmp_path / "full")
    assert _outputs(tmp_path / "out") == full
    quality = json.loads(full["data_quality_metrics.json"])
    assert quality["duplicate_count"] >= 1500  # every record of the copy, at least
    index = tmp_path / "out" / ".state" / "distinct"
    assert sorted(p.name for p in index.iterdir()) == ["base.npy", "delta-1.npy", "index.json"]
    base = index / "base.npy"
    data = bytearray(base.read_bytes())
    data[-3] ^= 0x01
    base.write_bytes(bytes(data))
    _day(days, 4)
    caplog.clear()
    run_engine(days, tmp_path / "out")
    assert any("distinct-record index is unusable" in r.getMessage() for r in caplog.records)
    assert _outputs(tmp_path / "out") == _full(days, tmp_path / "full-2")
    assert sorted(p.name for p in index.iterdir()) == ["base.npy", "index.json"]  # rebuilt
