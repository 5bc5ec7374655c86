"""Publication is atomic as a whole: at every instant, also right after a SIGKILL, every
`<output>/<file>` a user reads belongs to one run; something in the way of a published
name is refused before anything changes; backups read one run's set.

The in-process tests check the invariant after EVERY change publication makes to the
file system (each rename, link, unlink...): between two such changes the folder does not
change, so this covers every instant of a publish, without any timing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import PUBLISHED_FILES, engine_command, published_bytes, run_cli, run_engine, write_csv
from engine.outputs import publication

ROWS_A = [("2024-01-01", "P1", "1.00", "C1"), ("2024-01-02", "P2", "2.00", "C2"), ("2024-01-03", "P1", "x", "")]
ROWS_B = [("2024-02-01", "P3", "5.00", "C3"), ("2024-02-02", "P4", "7.25", ""), ("2024-02-05", "P3", "9.00", "C4")]
MUTATIONS = ("rename", "replace", "symlink", "unlink", "link", "rmdir", "mkdir")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two inputs and the published bytes each gives (in a folder of its own)."""
    root = tmp_path_factory.mktemp("runs")
    sources, expected = {}, {}
    for label, rows in (("A", ROWS_A), ("B", ROWS_B)):
        sources[label] = write_csv(root / f"{label}.csv", rows)
        run_engine(sources[label], root / f"out-{label}")
        expected[label] = published_bytes(root / f"out-{label}")
    assert expected["A"] != expected["B"]
    for name in PUBLISHED_FILES:
        assert expected["A"][name] != expected["B"][name], name
    return sources, expected


def _runs_seen(output: Path, expected: dict) -> dict[str, str | None]:
    """Which run (A, B, None if absent, '?' if neither) each published name shows now."""
    seen = {}
    for name in PUBLISHED_FILES:
        try:
            content = (output / name).read_bytes()
        except FileNotFoundError:
            seen[name] = None
            continue
        seen[name] = next((label for label, files in expected.items() if files[name] == content), "?")
    return seen


class _EveryChange:
    """Calls `check()` after every file-system change made while `publish()` runs."""

    def __init__(self, monkeypatch, check) -> None:
        self.checks = 0
        self.inside = False
        for name in MUTATIONS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name), check))
        real_publish = publication.StagedOutputs.publish

        def publish(staged):
            self.inside = True
            try:
                return real_publish(staged)
            finally:
                self.inside = False

        monkeypatch.setattr(publication.StagedOutputs, "publish", publish)

    def _wrap(self, function, check):
        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            if self.inside:
                self.inside = False  # the check itself must not recurse
                try:
                    check()
                    self.checks += 1
                finally:
                    self.inside = True
            return result
        return wrapped


def test_every_published_path_belongs_to_one_run_at_every_step_of_a_publish(tmp_path, two_runs, monkeypatch):
    sources, expected = two_runs
    output = tmp_path / "out"
    run_engine(sources["A"], output)
    assert set(_runs_seen(output, expected).values()) == {"A"}
    states = []

    def check():
        seen = _runs_seen(output, expected)
        states.append(set(seen.values()))
        assert len(set(seen.values())) == 1 and None not in seen.values() and "?" not in seen.values(), seen

    spy = _EveryChange(monkeypatch, check)
    for label in ("B", "A", "B"):
        run_engine(sources[label], output)
        assert set(_runs_seen(output, expected).values()) == {label}
    assert spy.checks >= 6  # the check really ran inside publication
    assert {"A"} in states and {"B"} in states


def test_an_older_engine_output_folder_switches_in_one_step(tmp_path, two_runs, monkeypatch):
    """Plain files left by an older version (or by a restore) are taken over without a
    moment where names show different runs."""
    sources, expected = two_runs
    output = tmp_path / "out"
    output.mkdir()
    for name, content in expected["A"].items():
        (output / name).write_bytes(content)

    def check():
        seen = _runs_seen(output, expected)
        assert len(set(seen.values())) == 1 and None not in seen.values(), seen

    _EveryChange(monkeypatch, check)
    run_engine(sources["B"], output)
    assert set(_runs_seen(output, expected).values()) == {"B"}
    assert all((output / name).is_symlink() for name in PUBLISHED_FILES)


def test_a_backup_taken_at_any_step_of_a_publish_holds_one_run(tmp_path, two_runs, monkeypatch):
    from engine.governance.backups import create_backup

    sources, expected = two_runs
    output = tmp_path / "out"
    run_engine(sources["A"], output)
    archives = []

    def back_up():
        created = create_backup(tmp_path / "backups", [output], "gzip")
        with tarfile.open(created.path) as tar:
            contents = {member.name.split("/", 1)[1]: tar.extractfile(member).read()
                        for member in tar.getmembers() if member.isfile() and member.name.count("/") == 1}
        seen = {name: next((label for label, files in expected.items() if files[name] == contents.get(name)), None)
                for name in PUBLISHED_FILES}
        archives.append(set(seen.values()))
        assert len(set(seen.values())) == 1 and None not in seen.values(), seen

    _EveryChange(monkeypatch, back_up)
    run_engine(sources["B"], output)
    assert {"A"} in archives and {"B"} in archives


def test_something_in_the_way_of_a_published_name_changes_nothing(tmp_path, two_runs):
    sources, expected = two_runs
    output = tmp_path / "out"
    done = run_cli("run", str(sources["A"]), "--output", str(output))
    assert done.returncode == 0, done.stderr
    (output / "report.html").unlink()
    (output / "report.html").mkdir()  # a folder where a published file goes
    before = {p.name: os.readlink(p) if p.is_symlink() else None for p in output.iterdir()}
    runs_before = sorted(p.name for p in (output / ".runs").iterdir())

    done = run_cli("run", str(sources["B"]), "--output", str(output))
    assert done.returncode == 2, done.stdout + done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(output / "report.html") in error_lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert published_bytes(output) == expected["A"]
    assert {p.name: os.readlink(p) if p.is_symlink() else None for p in output.iterdir()} == before
    assert sorted(p.name for p in (output / ".runs").iterdir()) == runs_before
    assert not [p for p in output.iterdir() if p.name.startswith(".staging-")]


def test_previous_run_is_kept_for_rollback_and_older_ones_removed(tmp_path, two_runs):
    sources, expected = two_runs
    output = tmp_path / "out"
    for label in ("A", "B", "A", "B"):
        result = run_engine(sources[label], output)
    runs = sorted(p.name for p in (output / ".runs").iterdir())
    assert len(runs) == 2 and result.run_id in runs
    assert json.loads((output / "run_report.json").read_text())["run_id"] == result.run_id
    # rollback, as docs/operations.md says: point .current at .previous with one rename
    os.symlink(os.readlink(output / ".previous"), output / ".current.new")
    os.rename(output / ".current.new", output / ".current")
    assert published_bytes(output) == expected["A"]
    assert [f.replaced for f in result.files] == [True] * len(result.files)


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return False


def test_sigkill_during_publication_leaves_one_run(tmp_path, two_runs):
    """Real `engine run` processes killed around publication (once their staged report
    exists, after a varying delay): whatever the moment, every name shows one run."""
    sources, expected = two_runs
    output = tmp_path / "out"
    done = run_cli("run", str(sources["A"]), "--output", str(output))
    assert done.returncode == 0, done.stderr
    for attempt in range(6):
        label = "B" if attempt % 2 == 0 else "A"
        process = subprocess.Popen(engine_command("run", str(sources[label]), "--output", str(output)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            staged = lambda: any((p / "report.html").exists() for p in output.glob(".staging-*"))  # noqa: E731
            if _wait_for(lambda: staged() or process.poll() is not None):
                time.sleep(attempt * 0.004)
                process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=120)
        seen = _runs_seen(output, expected)
        assert len(set(seen.values())) == 1 and None not in seen.values() and "?" not in seen.values(), seen
    done = run_cli("run", str(sources["B"]), "--output", str(output))  # and the folder works on
    assert done.returncode == 0, done.stderr
    assert published_bytes(output) == expected["B"]
    assert not [p for p in output.iterdir() if p.name.startswith((".staging-", ".link-"))]


def test_a_reader_never_sees_two_runs_while_runs_publish(tmp_path, two_runs):
    """A reader thread resolving every published path (each read through the link, as a
    user would, bracketed by one reading of `.current`) while runs publish alternately."""
    sources, expected = two_runs
    output = tmp_path / "out"
    run_engine(sources["A"], output)
    stop, problems, snapshots = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            before = os.readlink(output / ".current")
            seen = _runs_seen(output, expected)
            if os.readlink(output / ".current") != before:
                continue  # a switch happened while reading: not one instant
            snapshots[0] += 1
            if len(set(seen.values())) != 1 or None in seen.values():
                problems.append(seen)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for label in ("B", "A", "B", "A"):
            run_engine(sources[label], output)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not problems, problems[:3]
    assert snapshots[0] > 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs")
@pytest.mark.parametrize("condition", ["disk full", "read-only"])
def test_a_full_or_read_only_output_is_a_clear_error_and_keeps_the_previous_outputs(tmp_path, two_runs, condition):
    sources, expected = two_runs
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("mount is not permitted here")
    try:
        output = mount / "out"
        logs = tmp_path / "pipeline.log"
        done = run_cli("run", str(sources["A"]), "--output", str(output), "--log-file", str(logs))
        assert done.returncode == 0, done.stderr
        if condition == "disk full":
            filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(filler, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(filler)
        else:
            assert subprocess.run(["mount", "-o", "remount,ro", str(mount)]).returncode == 0
        # a read-only output folder cannot take the run's log either: that is the first write
        log_flags = ("--log-file", str(logs)) if condition == "disk full" else ()
        done = run_cli("run", str(sources["B"]), "--output", str(output), *log_flags)
        assert done.returncode == (6 if condition == "disk full" else 2), done.stdout + done.stderr
        error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1, done.stderr
        assert str(output) in error_lines[0] and "unexpected" not in done.stderr
        assert ("No space left" if condition == "disk full" else "Read-only") in error_lines[0]
        assert published_bytes(output) == expected["A"]
    finally:
        subprocess.run(["umount", str(mount)])


def test_an_output_path_that_is_a_file_is_a_usage_error_from_python_too(tmp_path):
    from engine.errors import ConfigurationError

    data = write_csv(tmp_path / "in.csv", ROWS_A)
    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me\n")
    with pytest.raises(ConfigurationError, match="cannot use as the output folder: it is a file"):
        run_engine(data, a_file)
    with pytest.raises(ConfigurationError, match=f"{a_file} is a file, not a folder"):
        run_engine(data, a_file / "out")
    assert a_file.read_text() == "keep me\n"
