"""Every kind of source gives the same outputs as the plain CSV it was made from."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import published_bytes, run_engine, write_csv
from test_modes import TRICKY_ROWS


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    source = write_csv(folder / "sales.csv", TRICKY_ROWS)
    run_engine(source, folder / "out")
    return source, published_bytes(folder / "out")


def _as_sources(source, folder):
    folder.mkdir(parents=True)
    data = source.read_bytes()
    text_rows = source.read_text().splitlines()
    header, rows = text_rows[0], text_rows[1:]
    made = {}
    (folder / "s.csv.gz").write_bytes(gzip.compress(data))
    made["gzip"] = folder / "s.csv.gz"
    (folder / "s.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    made["zstd"] = folder / "s.csv.zst"
    parts = folder / "parts"
    parts.mkdir()
    for index in range(3):
        (parts / f"part-{index}.csv").write_text("\n".join([header, *rows[index::3]]) + "\n")
    made["glob"] = str(parts / "part-*.csv")
    made["directory"] = parts
    reordered = folder / "reordered.csv"
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.insert(0, "store", "S1")
    frame[["customer_id", "store", "amount", "date", "product_id"]].to_csv(reordered, index=False)
    made["reordered columns and an extra one"] = reordered
    table = pa.Table.from_pandas(frame[["date", "product_id", "amount", "customer_id"]], preserve_index=False)
    table = table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))
    pq.write_table(table, folder / "s.parquet", row_group_size=7)
    made["parquet"] = folder / "s.parquet"
    hive = folder / "hive"
    for index in range(2):
        target = hive / f"region=r{index}"
        target.mkdir(parents=True)
        pq.write_table(table.slice(index * 15, 15), target / "data.parquet")
    made["parquet hive directory"] = hive
    return made


@pytest.mark.parametrize("kind", ["gzip", "zstd", "glob", "directory", "reordered columns and an extra one",
                                  "parquet", "parquet hive directory"])
@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_source_kinds_give_the_same_outputs(plain, tmp_path, kind, mode):
    source, expected = plain
    made = _as_sources(source, tmp_path / "src")
    run_engine(made[kind], tmp_path / "out", mode=mode, partition_size="100B")
    actual = published_bytes(tmp_path / "out")
    # The quarantine names each rejected row's own file and line, which differ by source kind.
    quarantined = pq.read_table(tmp_path / "out" / "rejected_rows.parquet")
    assert quarantined.num_rows == sum(expected_rejections(expected).values())
    assert {k: v for k, v in actual.items() if k != "rejected_rows.parquet"} == \
        {k: v for k, v in expected.items() if k != "rejected_rows.parquet"}


def expected_rejections(published: dict[str, bytes]) -> dict[str, int]:
    return json.loads(published["data_quality_metrics.json"])["rejected_by_reason"]


def test_typed_parquet_columns_are_read_as_their_text(tmp_path):
    """A Parquet export with real types: dates, float and decimal amounts, integer ids."""
    import datetime as dt
    from decimal import Decimal

    typed = pa.table({
        "date": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 1), None, dt.date(2024, 1, 2)], pa.date32()),
        "product_id": pa.array([1, 2, 3, 4], pa.int64()),
        "amount": pa.array([Decimal("10.005"), Decimal("0.10"), Decimal("1"), Decimal("-1")], pa.decimal128(10, 3)),
        "customer_id": pa.array(["a", None, "c", "d"]),
    })
    pq.write_table(typed, tmp_path / "typed.parquet")
    result = run_engine(tmp_path / "typed.parquet", tmp_path / "out")
    metrics = result.results["data_quality_metrics"]
    assert metrics["rejected_by_reason"]["missing_date"] == 1
    assert metrics["rejected_by_reason"]["non_positive_amount"] == 1
    daily = (tmp_path / "out" / "daily_sales_summary.csv").read_text().splitlines()
    assert daily[1] == "2024-01-01,10.11,5.06,2,2"


def test_customer_id_column_may_be_absent(tmp_path):
    source = write_csv(tmp_path / "s.csv", [("2024-01-01", "P1", "1")], header=("date", "product_id", "amount"))
    result = run_engine(source, tmp_path / "out", mode="dask")
    metrics = result.results["data_quality_metrics"]
    assert metrics["null_count_by_column"]["customer_id"] == 0
    assert metrics["cleaned_record_count"] == 1
