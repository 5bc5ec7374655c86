"""Bad input: one line naming the file (and line or columns), a distinct exit code, no
traceback, and the previous outputs left exactly as they were."""

from __future__ import annotations

import gzip
import os

import pytest

from conftest import published_bytes, run_cli, write_csv

INPUT_ERROR = 3
GOOD_ROWS = [("2024-01-01", "P1", "10.00", "C1"), ("2024-01-02", "P2", "5.00", "C2")]


def _bad_files(folder):
    """name -> (path, text expected in the message)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}

    def make(name, data: bytes, expected):
        path = folder / name
        path.write_bytes(data)
        cases[name] = (path, expected)

    make("empty.csv", b"", "file is empty")
    make("blank.csv", b"\n\n  \n", "file is empty")
    make("header_only.csv", b"date,product_id,amount,customer_id\n", "has a header but no data rows")
    make("no_amount.csv", b"date,product_id,customer_id\n2024-01-01,P1,C1\n", "missing required columns: amount")
    make("semicolons.csv", b"date;product_id;amount;customer_id\n2024-01-01;P1;3;C1\n", "';'-separated")
    make("garbage.csv", os.urandom(4096).replace(b"\n", b"x") + b"\x00\xff", "binary data")
    make("latin1.csv", "date,product_id,amount,customer_id\n".encode() [:-1] + "\u00e9\n".encode("latin-1")
         + b"2024-01-01,P1,1,C\n", "not UTF-8")
    make("unclosed_quote.csv", b'date,product_id,amount,customer_id\n2024-01-01,P1,1,C1\n2024-01-02,"P2,2,C2\n'
         b"2024-01-03,P3,3,C3\n", "line 3")
    make("extra_field.csv", b"date,product_id,amount,customer_id\n2024-01-01,P1,1,C1\n2024-01-01,P1,1,C1\n"
         b"2024-01-02,P2,2,C2,surprise\n", "line 4: expected 4 fields, found 5")
    make("header_only.csv.gz", gzip.compress(b"date,product_id,amount\n"), "has a header but no data rows")
    make("broken.parquet", b"PAR1 this is not really parquet", "not a readable Parquet file")
    return cases


BAD_NAMES = [
    "empty.csv", "blank.csv", "header_only.csv", "no_amount.csv", "semicolons.csv", "garbage.csv",
    "latin1.csv", "unclosed_quote.csv", "extra_field.csv", "header_only.csv.gz", "broken.parquet",
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def previous_output(tmp_path_factory):
    """An output directory holding a successful run's outputs."""
    folder = tmp_path_factory.mktemp("previous")
    good = write_csv(folder / "good.csv", GOOD_ROWS)
    done = run_cli("run", str(good), "--output", str(folder / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    return folder / "out"


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_bad_input_is_one_clear_line(bad_files, previous_output, name, mode):
    path, expected = bad_files[name]
    before = published_bytes(previous_output)
    done = run_cli("run", str(path), "--output", str(previous_output), "--mode", mode, "--partition-size", "40B")
    assert done.returncode == INPUT_ERROR, done.stderr
    lines = done.stderr.strip().splitlines()
    error_lines = [line for line in lines if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    assert str(path) in error_lines[0]
    assert expected in error_lines[0]
    assert "Traceback" not in done.stderr
    assert published_bytes(previous_output) == before
    assert not [p for p in previous_output.iterdir() if p.name.startswith(".staging-")]


def test_missing_file_is_an_input_error(tmp_path):
    done = run_cli("run", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out"))
    assert done.returncode == INPUT_ERROR
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: no such file or directory"
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()


def test_glob_matching_nothing_is_an_input_error(tmp_path):
    done = run_cli("run", str(tmp_path / "*.csv"), "--output", str(tmp_path / "out"))
    assert done.returncode == INPUT_ERROR
    assert "no file matches this pattern" in done.stderr


def test_one_bad_file_in_a_glob_is_named(tmp_path):
    write_csv(tmp_path / "in" / "a.csv", GOOD_ROWS)
    (tmp_path / "in" / "b.csv").write_text("date,product_id,amount\n")
    done = run_cli("run", str(tmp_path / "in" / "*.csv"), "--output", str(tmp_path / "out"))
    assert done.returncode == INPUT_ERROR
    assert f"{tmp_path / 'in' / 'b.csv'}: has a header but no data rows" in done.stderr


def test_debug_shows_the_traceback(bad_files, tmp_path):
    path, _ = bad_files["extra_field.csv"]
    done = run_cli("--debug", "run", str(path), "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == INPUT_ERROR
    assert "Traceback" in done.stderr


def test_usage_errors_have_their_own_code(tmp_path):
    done = run_cli("run", "x.csv", "--mode", "turbo")
    assert done.returncode == 2
    assert "invalid choice: 'turbo'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
