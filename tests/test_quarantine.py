"""The quarantine: rejected rows in <output>/rejected_rows.parquet with their reason, file
and line, customer ids pseudonymised or left out; malformed lines skipped on request.

The reference is written here independently: Python's csv module numbers the lines,
and the oracle's SQL rules (tests/oracle.py) give each row's reason.
"""

from __future__ import annotations

import csv
import io
import random

import pyarrow.parquet as pq
import pytest

from conftest import run_cli, run_engine
from engine.rules.pseudonyms import pseudonym
from oracle import row_reasons

KEY = "quarantine-test-key-0123456789"


def _dirty_file(path, rows=2000, seed=7):
    """CSV text with blank lines, malformed lines (wrong field counts) and every reject reason."""
    rng = random.Random(seed)
    lines = ["date,product_id,amount,customer_id"]
    for i in range(rows):
        kind = rng.random()
        if kind < 0.03:
            lines.append("")
        elif kind < 0.06:
            lines.append(f"2024-02-{i % 28 + 1:02d},P{i % 9},1.00,C{i},surplus")
        elif kind < 0.08:
            lines.append(f"2024-02-{i % 28 + 1:02d},P{i % 9}")
        else:
            date = rng.choice([f"2024-03-{i % 30 + 1:02d}", "2024-02-30", "", " ", "03/04/2024"])
            product = rng.choice([f"P{i % 13}", "", f" P{i % 5} "])
            amount = rng.choice([f"{rng.randint(1, 50000) / 100:.2f}", "-3", "0", "abc", "", "1e3"])
            lines.append(",".join([date, product, amount, rng.choice([f"C{i % 300}", ""])]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reference(path):
    """(line, reason, date, product_id, amount, customer_id) of every rejected line, by line."""
    rows, malformed = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, text in enumerate(handle.read().split("\n")[:-1], start=1):
            if number == 1 or text == "":
                continue
            cells = next(csv.reader(io.StringIO(text)))
            if len(cells) != 4:
                malformed.append((number, "malformed_line", None, None, None, None))
            else:
                rows.append((number, *[cell if cell != "" else None for cell in cells]))
    reasons = row_reasons([row[1:] for row in rows])
    rejected = [(row[0], reason, *row[1:]) for row, reason in zip(rows, reasons) if reason is not None]
    return sorted(rejected + malformed)


def _quarantine(output):
    return pq.read_table(output / "rejected_rows.parquet").to_pylist()


@pytest.mark.parametrize("mode, settings", [
    ("pandas", {}),
    ("dask", {"partition_size": "2KiB"}),
    ("distributed", {"partition_size": "4KiB", "cluster.workers": 2}),
])
def test_rejected_rows_with_file_line_reason_and_pseudonyms(tmp_path, monkeypatch, mode, settings):
    monkeypatch.setenv("ENGINE_PSEUDONYM_KEY", KEY)
    source = _dirty_file(tmp_path / "dirty.csv")
    result = run_engine(source, tmp_path / "out", mode=mode, malformed_lines="skip", **settings)
    published = _quarantine(tmp_path / "out")
    expected = _reference(source)
    assert [(r["line"], r["reason"], r["date"], r["product_id"], r["amount"]) for r in published] == \
        [row[:5] for row in expected]
    assert {r["file"] for r in published} == {str(source.resolve())}
    assert [r["customer_id"] for r in published] == \
        [pseudonym(KEY.encode(), row[5]) if row[5] else None for row in expected]
    metrics = result.results["data_quality_metrics"]
    malformed = sum(1 for row in expected if row[1] == "malformed_line")
    assert malformed > 0 and metrics["rejected_by_reason"]["malformed_line"] == malformed
    assert metrics["raw_record_count"] - metrics["cleaned_record_count"] == len(expected)


def test_the_quarantine_is_the_same_bytes_in_every_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_PSEUDONYM_KEY", KEY)
    source = _dirty_file(tmp_path / "dirty.csv", rows=3000, seed=11)
    copies = set()
    for mode, settings in (("pandas", {}), ("dask", {"partition_size": "1KiB"}), ("dask", {"partition_size": "5KiB"})):
        run_engine(source, tmp_path / mode, mode=mode, malformed_lines="skip", **settings)
        copies.add((tmp_path / mode / "rejected_rows.parquet").read_bytes())
    assert len(copies) == 1


def test_without_a_key_customer_ids_are_left_out(tmp_path, monkeypatch):
    monkeypatch.delenv("ENGINE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("ENGINE_PSEUDONYM_KEY_FILE", raising=False)
    source = tmp_path / "s.csv"
    source.write_text("date,product_id,amount,customer_id\n2024-01-01,P1,abc,CUSTOMER-SECRET-42\n"
                      "2024-01-02,P2,3.00,CUSTOMER-OK-1\n", encoding="utf-8")
    run_engine(source, tmp_path / "out", mode="pandas")
    rows = _quarantine(tmp_path / "out")
    assert [(r["line"], r["reason"], r["customer_id"]) for r in rows] == [(2, "invalid_amount", None)]
    assert b"CUSTOMER-SECRET-42" not in (tmp_path / "out" / "rejected_rows.parquet").read_bytes()


def test_a_malformed_line_fails_the_run_by_default_naming_its_line(tmp_path):
    source = tmp_path / "s.csv"
    source.write_text("date,product_id,amount,customer_id\n2024-01-01,P1,1.00,C1\n\n\n"
                      "2024-01-02,P2,2.00,C2,extra\n", encoding="utf-8")
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"))
    assert done.returncode == 3
    assert f"{source}: line 5: expected 4 fields, found 5" in done.stderr
    assert "Traceback" not in done.stderr
    skipped = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--skip-malformed-lines")
    assert skipped.returncode == 0, skipped.stderr
    assert [(r["line"], r["reason"], r["detail"]) for r in _quarantine(tmp_path / "out")] == \
        [(5, "malformed_line", "expected 4 fields, found 5")]
