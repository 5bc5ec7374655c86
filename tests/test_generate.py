"""Tests of the synthetic sales generator (engine/sources/generate.py).

The generated rows are checked against an independent, plain-Python reading of the
cleaning rules of docs/semantics.md (`reject_reason` below), so the dirt is known to be
rejected for the intended reason and the oddities are known to be kept.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import re
from collections import Counter
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import zstandard

import engine.sources.generate as generate_module
from engine.sources.generate import DIRT_KINDS, GeneratedSummary, generate_sales

HEADER = ["date", "product_id", "amount", "customer_id"]
ROWS = 100_000
SEED = 11
DIRT = 0.04

_DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AMOUNT_SHAPE = re.compile(r"([+-]?)([0-9]{0,12})(?:\.([0-9]*))?")


def reject_reason(row: list[str]) -> str | None:
    """The first cleaning rule the row breaks (docs/semantics.md), or None if it is kept."""
    when, product, amount = (cell.strip(" \t") for cell in row[:3])
    if not when:
        return "missing_date"
    if not _DATE_SHAPE.fullmatch(when) or when.startswith("0000"):
        return "invalid_date"
    try:
        date.fromisoformat(when)
    except ValueError:
        return "invalid_date"
    if not product:
        return "missing_product_id"
    if not amount:
        return "missing_amount"
    shape = _AMOUNT_SHAPE.fullmatch(amount)
    if not shape or not (shape[2] or shape[3]):
        return "invalid_amount"
    if cents(amount) <= 0:
        return "non_positive_amount"
    return None


def cents(amount: str) -> int:
    """Whole cents, rounded half away from zero."""
    value = Decimal(amount.strip())
    magnitude = int((abs(value) * 100).to_integral_value(rounding=ROUND_HALF_UP))
    return -magnitude if value < 0 else magnitude


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[GeneratedSummary, bytes, list[list[str]]]:
    """100,000 rows with the default dirt: the summary, the file's bytes, the data rows."""
    path = tmp_path_factory.mktemp("generated") / "sales.csv"
    summary = generate_sales(path, ROWS, seed=SEED, dirt=DIRT)
    data = path.read_bytes()
    records = parse(data)
    assert records[0] == HEADER
    return summary, data, records[1:]


@pytest.fixture(scope="module")
def reasons(sample) -> list[str | None]:
    return [reject_reason(row) for row in sample[2]]


@pytest.fixture(scope="module")
def cells(sample, reasons) -> dict[tuple[int, str | None], Counter]:
    """How often each cell text occurs, by column and by the row's reject reason."""
    found: dict[tuple[int, str | None], Counter] = {}
    for row, reason in zip(sample[2], reasons):
        for column, cell in enumerate(row):
            found.setdefault((column, reason), Counter())[cell] += 1
    return found


def occurrences(cells, column: int, reason: str | None, pattern: str) -> int:
    counter = cells.get((column, reason), Counter())
    return sum(count for cell, count in counter.items() if re.fullmatch(pattern, cell))


# --------------------------------------------------------------------------- shape


def test_header_exact_row_count_and_summary(sample):
    summary, data, rows = sample
    assert data.startswith(b"date,product_id,amount,customer_id\n")
    assert len(rows) == ROWS
    assert data.count(b"\n") == ROWS + 1 and data.endswith(b"\n")  # no line break inside a cell
    assert b"\r" not in data
    assert all(len(row) == 4 for row in rows)
    assert summary == GeneratedSummary(path=summary.path, rows=ROWS, bytes_written=len(data), seed=SEED)
    assert summary.path.name == "sales.csv"
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.rows = 1  # type: ignore[misc]


def test_quoting_only_where_needed(sample):
    _, data, rows = sample
    lines = data.decode("utf-8").split("\n")
    quoted = [line for line in lines if '"' in line]
    assert len(quoted) < 0.02 * ROWS  # a normal export: clean rows carry no quotes
    assert ',"",' not in data.decode("utf-8") and not data.startswith(b'""')  # empty stays empty
    assert any(line.startswith(",") for line in lines)  # an empty date cell
    assert any(re.match(r'^"[ \t]+",', line) for line in lines)  # a whitespace-only one, quoted
    assert any(re.search(r',"[0-9]{1,3}(,[0-9]{3})+\.[0-9]{2}",', line) for line in lines)
    # Every quoted cell needs its quotes: a comma inside, or only whitespace.
    for line in quoted:
        for inside in re.findall(r'"((?:[^"]|"")*)"', line):
            assert "," in inside or re.fullmatch(r"[ \t]+", inside), line


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = generate_sales(tmp_path / "a.csv", 20_000, seed=3)
    again = generate_sales(tmp_path / "b.csv", 20_000, seed=3)
    other = generate_sales(tmp_path / "c.csv", 20_000, seed=4)
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.path.read_bytes() != other.path.read_bytes()


def test_chunk_size_does_not_change_the_output(tmp_path):
    rows = 70_000  # more than one internal block of random draws
    default = generate_sales(tmp_path / "default.csv", rows, seed=5)
    small = generate_sales(tmp_path / "small.csv", rows, seed=5, chunk_rows=997)
    assert default.path.read_bytes() == small.path.read_bytes()


# --------------------------------------------------------------------------- dirt


def test_every_reject_reason_at_its_rate(reasons):
    counts = Counter(reasons)
    rejected = ROWS - counts[None]
    assert 0.75 * DIRT * ROWS < rejected < 1.25 * DIRT * ROWS
    for reason in sorted({kind.reason for kind in DIRT_KINDS}):
        share = sum(kind.share for kind in DIRT_KINDS if kind.reason == reason)
        expected = share * DIRT * ROWS
        assert 0.7 * expected < counts[reason] < 1.3 * expected, (reason, counts[reason], expected)


@pytest.mark.parametrize(
    ("column", "pattern", "reason"),
    [
        (0, r"", "missing_date"),
        (0, r"[ \t]+", "missing_date"),
        (0, r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "invalid_date"),  # 2023-02-30
        (0, r"[0-9]{4}/[0-9]{2}/[0-9]{2}", "invalid_date"),  # 2024/01/05
        (0, r"[0-9]{2}-[0-9]{2}-[0-9]{4}", "invalid_date"),  # 05-01-2024
        (0, r"not a date", "invalid_date"),
        (1, r"", "missing_product_id"),
        (1, r"[ \t]+", "missing_product_id"),
        (2, r"", "missing_amount"),
        (2, r"[ \t]+", "missing_amount"),
        (2, r"abc", "invalid_amount"),
        (2, r"NaN", "invalid_amount"),
        (2, r"[0-9]{1,3}(,[0-9]{3})+\.[0-9]{2}", "invalid_amount"),  # 1,234.50
        (2, r"\$[0-9]+\.[0-9]{2}", "invalid_amount"),  # $12.00
        (2, r"inf", "invalid_amount"),
        (2, r"0(\.0+)?", "non_positive_amount"),
        (2, r"-[0-9]+\.[0-9]{2}", "non_positive_amount"),
    ],
)
def test_every_kind_of_dirt_occurs(cells, column, pattern, reason):
    assert occurrences(cells, column, reason, pattern) >= 10


@pytest.mark.parametrize(
    ("column", "pattern"),
    [
        (0, r"\s+[0-9]{4}-[0-9]{2}-[0-9]{2}\s*|\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s+"),  # padded date
        (1, r"\s+P[0-9]{6}\s*|\s*P[0-9]{6}\s+"),  # padded product
        (2, r"\s+[0-9.]+\s*|\s*[0-9.]+\s+"),  # padded amount
        (3, r"\s+C[0-9]{7}\s*|\s*C[0-9]{7}\s+"),  # padded customer
        (1, r"NA"),  # a product literally called NA
        (2, r"[0-9]+\.[0-9]"),  # 12.5
        (2, r"\.[0-9]{2}"),  # .75
        (2, r"\+[0-9]+\.[0-9]{2}"),  # +12.50
        (3, r""),  # no customer: optional
    ],
)
def test_harmless_oddities_occur_and_are_kept(cells, column, pattern):
    assert occurrences(cells, column, None, pattern) >= 10


def test_duplicates_copy_earlier_rows(sample):
    rows = sample[2]
    seen: set[tuple[str, ...]] = set()
    duplicates = 0
    for row in rows:
        key = tuple(row)
        duplicates += key in seen
        seen.add(key)
    assert 0.006 * ROWS < duplicates < 0.015 * ROWS  # duplicate_rate 1 %


def test_no_dirt_means_every_row_is_kept(tmp_path):
    summary = generate_sales(tmp_path / "clean.csv", 20_000, seed=2, dirt=0.0, duplicate_rate=0.0)
    rows = parse(summary.path.read_bytes())[1:]
    assert [row for row in rows if reject_reason(row) is not None] == []
    assert len(set(map(tuple, rows))) > 0.999 * len(rows)


# --------------------------------------------------------------------------- realism


def test_looks_like_sales(sample, reasons):
    kept = [row for row, r in zip(sample[2], reasons) if r is None]
    products = Counter(row[1].strip() for row in kept)
    assert all(re.fullmatch(r"P[0-9]{6}|NA", product) for product in products)
    top_20 = sum(count for _, count in products.most_common(20))
    assert top_20 > 0.3 * len(kept)  # a few best sellers dominate (Zipf-like)
    assert all(re.fullmatch(r"C[0-9]{7}|", row[3].strip()) for row in kept)
    assert 0.05 < sum(row[3] == "" for row in kept) / len(kept) < 0.11  # about 8 % anonymous

    days = [date.fromisoformat(row[0].strip()) for row in kept]
    assert date(2022, 1, 1) <= min(days) and max(days) <= date(2022, 1, 1) + timedelta(days=3 * 365 - 1)
    per_weekday = Counter(day.weekday() for day in days)
    assert min(per_weekday[5], per_weekday[6]) > 1.15 * max(per_weekday[d] for d in range(5))  # weekends busier
    first_year = sum(day.year == 2022 for day in days)
    last_year = sum(day.year == 2024 for day in days)
    assert last_year > 1.1 * first_year  # mild growth
    clean_dates = [row[0] for row in sample[2] if _DATE_SHAPE.fullmatch(row[0])]
    assert sum(a > b for a, b in zip(clean_dates, clean_dates[1:])) < 0.02 * len(clean_dates)  # export order

    amounts = [cents(row[2]) for row in kept]
    assert min(amounts) > 0 and sorted(amounts)[len(amounts) // 2] in range(500, 5000)
    assert sum(bool(re.fullmatch(r"[0-9]+\.[0-9]{2}", row[2])) for row in kept) > 0.97 * len(kept)


# --------------------------------------------------------------------------- compression


def test_gzip_and_zstd_hold_the_plain_content(tmp_path):
    plain = generate_sales(tmp_path / "s.csv", 30_000, seed=9)
    gz = generate_sales(tmp_path / "s.csv.gz", 30_000, seed=9)
    zst = generate_sales(tmp_path / "s.csv.zst", 30_000, seed=9)
    content = plain.path.read_bytes()
    assert gzip.decompress(gz.path.read_bytes()) == content
    with zstandard.ZstdDecompressor().stream_reader(zst.path.read_bytes()) as reader:
        assert reader.read() == content
    for summary in (plain, gz, zst):
        assert summary.bytes_written == summary.path.stat().st_size
    assert gz.bytes_written < len(content) / 2 and zst.bytes_written < len(content) / 2
    again = generate_sales(tmp_path / "t.csv.gz", 30_000, seed=9)
    assert again.path.read_bytes() == gz.path.read_bytes()  # no timestamp or name inside


def test_parquet_holds_the_csv_cells_and_does_not_depend_on_chunk_rows(tmp_path):
    import pyarrow.parquet as pq

    plain = generate_sales(tmp_path / "s.csv", 70_000, seed=9)
    parquet = generate_sales(tmp_path / "s.parquet", 70_000, seed=9)
    assert parquet.path.read_bytes()[:4] == b"PAR1" and parquet.bytes_written == parquet.path.stat().st_size
    table = pq.read_table(parquet.path)
    assert table.column_names == HEADER and all(str(t) == "string" for t in table.schema.types)
    rows = [[cell or "" for cell in row.values()] for row in table.to_pylist()]
    assert rows == parse(plain.path.read_bytes())[1:]  # an empty CSV cell is null in Parquet
    assert table.column("customer_id").null_count > 0
    again = generate_sales(tmp_path / "t.parquet", 70_000, seed=9, chunk_rows=997)
    assert again.path.read_bytes() == parquet.path.read_bytes()


@pytest.mark.parametrize("name", ["sales.json", "sales.tsv", "sales.gz", "sales", ".csv"])
def test_a_name_of_no_known_form_is_refused_before_writing(tmp_path, name):
    with pytest.raises(ValueError, match=r"end it with one of \.csv, \.csv\.gz, \.csv\.zst, .*\.parquet"):
        generate_sales(tmp_path / name, 100)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "arguments",
    [
        {"rows": 0},
        {"rows": -5},
        {"rows": 2.5},
        {"seed": -1},
        {"dirt": 1.5},
        {"dirt": float("nan")},
        {"duplicate_rate": 1.0},
        {"days": 0},
        {"products": 0},
        {"customers": 0},
        {"chunk_rows": 0},
        {"start": "2024/01/01"},
        {"start": "2023-02-30"},
        {"start": "9999-12-01"},
    ],
)
def test_bad_argument_raises_before_writing(tmp_path, arguments):
    call = {"rows": 100} | arguments
    rows = call.pop("rows")
    with pytest.raises(ValueError):
        generate_sales(tmp_path / "out" / "sales.csv", rows, **call)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "sales.csv"
    target.write_text("previous content\n")
    real_block_lines = generate_module._block_lines

    def fail_on_second_block(spec, catalog, block):
        if block == 1:
            raise RuntimeError("disk on fire")
        return real_block_lines(spec, catalog, block)

    monkeypatch.setattr(generate_module, "_block_lines", fail_on_second_block)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_sales(target, 100_000, chunk_rows=10_000)
    assert target.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.csv"]


def test_disk_full_while_writing_leaves_no_file(tmp_path, monkeypatch):
    class FullDisk(io.RawIOBase):
        def __init__(self):
            self.written = 0

        def writable(self):
            return True

        def write(self, data):
            self.written += len(data)
            if self.written > 1_000_000:
                raise OSError(28, "No space left on device")
            return len(data)

    @contextlib.contextmanager
    def full_disk(raw, compression):
        yield FullDisk()

    monkeypatch.setattr(generate_module, "_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        generate_sales(tmp_path / "sales.csv", 200_000, chunk_rows=20_000)
    assert list(tmp_path.iterdir()) == []


def test_unusable_output_location_raises_and_writes_nothing(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):
        generate_sales(blocker / "sales.csv", 100)
    with pytest.raises(ValueError):
        generate_sales(tmp_path, 100)  # a directory, not a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-directory"]


def test_missing_parent_directories_are_created(tmp_path):
    summary = generate_sales(tmp_path / "a" / "b" / "sales.csv", 10, seed=1)
    assert len(parse(summary.path.read_bytes())) == 11
