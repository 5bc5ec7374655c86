"""Every physical line of a CSV input is one record: a quoted field that runs past its
line, a bare carriage return or a NUL byte makes that line malformed, in every mode and
partitioning, and never swallows the lines after it.

The reference is independent of the engine: each physical line is parsed alone by
Python's csv module (strict, so an unclosed quote is an error), and the oracle's SQL
rules (tests/oracle.py) give each kept line's reason.
"""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from conftest import run_cli, run_engine
from oracle import row_reasons

KEY = "line-structure-test-key-0123456789"
SWALLOWING = (
    "date,product_id,amount,customer_id\n"
    '2024-01-01,"P1,10,alice@example.com\n'
    "2024-01-02,P2,11,SECRETCUST-bob\n"
    '2024-01-03,P3",12,c3\n'
    "2024-01-04,P4,-13,carol\n"
)


def _good_lines(count: int, start: int = 0) -> str:
    return "".join(f"2024-01-{i % 28 + 1:02d},P{i % 17},{i % 500 + 1}.25,C{i}\n" for i in range(start, start + count))


def _reference(text: str) -> tuple[int, list[int], list[tuple[int, str | None]]]:
    """(records read, malformed line numbers, (line, reject reason or None) of the other records)."""
    malformed, records = [], []
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if number == 1 or line == "":
            continue
        try:
            if line.count('"') % 2 or "\r" in line.rstrip("\r") or "\x00" in line:
                raise csv.Error("not a record on its own")
            cells = next(csv.reader(io.StringIO(line.rstrip("\r")), strict=True))
        except csv.Error:
            malformed.append(number)
            continue
        if len(cells) != 4:
            malformed.append(number)
        else:
            records.append((number, [cell if cell.strip() else None for cell in cells]))
    reasons = row_reasons([cells for _, cells in records])
    return len(malformed) + len(records), malformed, [(number, reason) for (number, _), reason in zip(records, reasons)]


def _published_text(output) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(output.iterdir()) if path.is_file())


def test_a_line_break_inside_quotes_fails_the_run_naming_the_line(tmp_path):
    source = tmp_path / "sales.csv"
    source.write_text(SWALLOWING, encoding="utf-8")
    for mode in ("pandas", "dask"):
        done = run_cli("run", str(source), "--output", str(tmp_path / mode), "--mode", mode)
        assert done.returncode == 3, done.stderr
        assert f"{source}: line 2: a quoted field is not closed on its line" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("mode, settings", [
    ("pandas", {}),
    ("dask", {"partition_size": "64B"}),
])
def test_skipping_leaves_out_only_the_broken_lines_and_no_id_in_clear(tmp_path, monkeypatch, mode, settings):
    monkeypatch.setenv("ENGINE_PSEUDONYM_KEY", KEY)
    source = tmp_path / "sales.csv"
    source.write_text(SWALLOWING, encoding="utf-8")
    result = run_engine(source, tmp_path / "out", mode=mode, malformed_lines="skip", **settings)
    metrics = result.results["data_quality_metrics"]
    assert metrics["raw_record_count"] == 4
    assert metrics["rejected_by_reason"]["malformed_line"] == 2
    quarantine = pq.read_table(tmp_path / "out" / "rejected_rows.parquet").to_pylist()
    assert [(r["line"], r["reason"]) for r in quarantine] == \
        [(2, "malformed_line"), (4, "malformed_line"), (5, "non_positive_amount")]
    for secret in (b"SECRETCUST-bob", b"alice@example.com", b"carol"):
        assert secret not in _published_text(tmp_path / "out")


@pytest.mark.parametrize("mode, partition_size", [("pandas", None), ("pandas", "8KiB"), ("dask", "8KiB"), ("dask", None)])
def test_an_unclosed_quote_never_swallows_the_lines_after_it(tmp_path, mode, partition_size):
    text = "date,product_id,amount,customer_id\n" + _good_lines(300) + '2024-02-01,"P-open,3.00,C-open\n' + \
        _good_lines(1011, start=300)
    source = tmp_path / "sales.csv"
    source.write_text(text, encoding="utf-8")
    settings = {"partition_size": partition_size} if partition_size else {}
    with pytest.raises(Exception, match="line 302: a quoted field is not closed"):
        run_engine(source, tmp_path / "failed", mode=mode, **settings)
    result = run_engine(source, tmp_path / "out", mode=mode, malformed_lines="skip", **settings)
    metrics = result.results["data_quality_metrics"]
    assert metrics["raw_record_count"] == 1312
    assert metrics["cleaned_record_count"] == 1311
    assert metrics["rejected_by_reason"]["malformed_line"] == 1


def test_quarantine_lines_stay_exact_after_broken_lines_in_every_partitioning(tmp_path, monkeypatch):
    """Quotes that pair up but leave a field open (`b"c,"d`), doubled quotes, stray quotes,
    bare carriage returns and NUL bytes, among rejected rows, cut at many boundaries."""
    monkeypatch.setenv("ENGINE_PSEUDONYM_KEY", KEY)
    pieces = ["date,product_id,amount,customer_id\n"]
    odd = ['2024-03-01,b"c,"d,C\n', '2024-03-02,"P""quoted",4.00,C\n', '2024-03-03,P 12" pipe,5.00,C\n',
           "2024-03-04,P4,1.00\r,C\n", "2024-03-05,P\x005,1.00,C\n", '2024-03-06,"P6\r\n', '7",1.00,C\r\n',
           "2024-03-08,P8,abc,C8\n", "2024-03-09,,1.00,C9\n", "2024-03-10,P10,1.00,C10,extra\n"]
    for block in range(12):
        pieces.append(_good_lines(97, start=block * 97))
        pieces.append(odd[block % len(odd)])
    text = "".join(pieces)
    source = tmp_path / "sales.csv"
    source.write_bytes(text.encode())
    records, malformed, rows = _reference(text)
    rejected = sorted([(n, "malformed_line") for n in malformed] + [(n, r) for n, r in rows if r is not None])
    copies = set()
    for mode, size in (("pandas", None), ("pandas", "3KiB"), ("dask", "1KiB"), ("dask", "7KiB")):
        out = tmp_path / f"{mode}-{size}"
        result = run_engine(source, out, mode=mode, malformed_lines="skip", **({"partition_size": size} if size else {}))
        metrics = result.results["data_quality_metrics"]
        assert metrics["raw_record_count"] == records
        quarantine = pq.read_table(out / "rejected_rows.parquet").to_pylist()
        assert [(r["line"], r["reason"]) for r in quarantine] == rejected
        copies.add((out / "daily_sales_summary.csv").read_bytes() + (out / "rejected_rows.parquet").read_bytes())
    assert len(copies) == 1


def test_a_nul_byte_after_the_first_64_kib_is_a_malformed_line(tmp_path):
    text = "date,product_id,amount,customer_id\n" + _good_lines(3000) + "2024-02-01,P\x00X,1.00,C\n" + _good_lines(5)
    assert text.index("\x00") > 64 * 1024
    source = tmp_path / "sales.csv"
    source.write_bytes(text.encode())
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"))
    assert done.returncode == 3 and f"{source}: line 3002: a NUL byte" in done.stderr, done.stderr
    skipped = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--skip-malformed-lines")
    assert skipped.returncode == 0, skipped.stderr
    metrics = json.loads((tmp_path / "out" / "data_quality_metrics.json").read_text())
    assert metrics["cleaned_record_count"] == 3005 and metrics["rejected_by_reason"]["malformed_line"] == 1
    products = pq.read_table(tmp_path / "out" / "rejected_rows.parquet").column("product_id").to_pylist()
    assert products == [None]


def test_anonymize_writes_nothing_for_a_line_it_cannot_pseudonymise(tmp_path, monkeypatch):
    source = tmp_path / "sales.csv"
    source.write_text(SWALLOWING, encoding="utf-8")
    target = tmp_path / "copy.csv"
    done = run_cli("anonymize", str(source), str(target), env={"ENGINE_PSEUDONYM_KEY": KEY})
    assert done.returncode == 3, done.stderr
    assert "line 2: a quoted field is not closed on its line" in done.stderr
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name not in {"sales.csv"}]


def test_a_duplicated_column_in_the_header_is_refused(tmp_path):
    source = tmp_path / "sales.csv"
    source.write_text("date,product_id,amount,amount\n2024-01-01,P1,1.00,2.00\n", encoding="utf-8")
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"))
    assert done.returncode == 3
    assert f"{source}: the header names column 'amount' 2 times" in done.stderr
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()
