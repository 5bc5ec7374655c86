"""Where a run's outputs go when INPUT or --output is a URL: the work folder of an
object-storage output, and URLs no source or sink handles. A URL mistyped with a password
in it must leave that password nowhere: not in the error line, the audit log, the lineage
kept for replay, nor a folder name."""

from __future__ import annotations

import pytest

from conftest import run_cli, write_csv
from engine.config import load_config
from engine.errors import ConfigurationError
from engine.storage.locations import output_location

PASSWORD = "Sup3rSecretPW"


def _audited(path) -> str:
    """The audit log's text (a usage error found before the command starts records nothing)."""
    return path.read_text() if path.exists() else ""


def _everything_under(folder) -> str:
    """The names and text of every file below `folder`."""
    found = []
    for path in sorted(folder.rglob("*")):
        found.append(str(path))
        if path.is_file():
            found.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(found)


def test_an_output_url_that_is_not_object_storage_is_a_usage_error_that_shows_no_password(
        tmp_path, session_audit_log):
    state = tmp_path / "state"
    sales = write_csv(tmp_path / "sales.csv", [["2024-01-01", "P1", "10.00", "C1"]])
    done = run_cli("run", str(sales), "--output", f"postgresql://loader:{PASSWORD}@db/x",
                   env={"XDG_STATE_HOME": str(state)}, cwd=tmp_path)
    assert done.returncode == 2
    assert "not a folder or object storage" in done.stderr and "--sink" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert PASSWORD not in _audited(session_audit_log)
    assert not state.exists() or PASSWORD not in _everything_under(state)


def test_an_input_url_no_source_reads_is_a_usage_error_listing_the_known_schemes(tmp_path, session_audit_log):
    output = tmp_path / "out"
    done = run_cli("run", f"mysql://reader:{PASSWORD}@db/shop", "--table", "sales", "--output", str(output))
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "no source reads mysql:// URLs" in line
    assert "postgresql" in line and "s3" in line
    assert PASSWORD not in done.stdout + done.stderr
    assert PASSWORD not in _audited(session_audit_log)
    assert PASSWORD not in _everything_under(output)  # the FAIL event kept in lineage/


def test_a_sink_of_an_unknown_scheme_shows_no_password(tmp_path, session_audit_log):
    sales = write_csv(tmp_path / "sales.csv", [["2024-01-01", "P1", "10.00", "C1"]])
    done = run_cli("run", str(sales), "--output", str(tmp_path / "out"), "--sink", f"mysql://u:{PASSWORD}@db/x")
    assert done.returncode == 2 and "no sink writes mysql:// URLs" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr + _audited(session_audit_log)


@pytest.mark.parametrize("first, second", [("s3://bucket/a:b", "s3://bucket/a_b"),
                                           ("s3://bucket/reports", "s3://other/reports")])
def test_every_output_url_has_a_work_folder_of_its_own(tmp_path, monkeypatch, first, second):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    folders = [output_location(load_config(overrides={"output": url}, environ={})).folder for url in (first, second)]
    assert folders[0] != folders[1]
    assert all(folder.is_relative_to(tmp_path / "sales-engine" / "s3") for folder in folders)


def test_a_work_folder_stays_in_its_place_whatever_the_url_says(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    folder = output_location(load_config(overrides={"output": "s3://bucket/../../../etc/x"}, environ={})).folder
    assert folder.is_relative_to(tmp_path / "sales-engine" / "s3" / "bucket")
    named = output_location(load_config(overrides={"output": "s3://bucket/x", "storage.work_dir": str(tmp_path / "w")},
                                        environ={}))
    assert named.folder == tmp_path / "w" and named.url == "s3://bucket/x"


def test_an_ftp_output_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="not a folder or object storage"):
        output_location(load_config(overrides={"output": "ftp://host/reports"}, environ={}))
    assert not any(tmp_path.iterdir())
