"""Every mode gives the same bytes, and those bytes are what an independent
implementation of the specification (tests/oracle.py, DuckDB SQL) computes."""

from __future__ import annotations

import pytest

from oracle import expected_outputs
from conftest import published_bytes, read_outputs, run_engine, write_csv

#: Rows chosen to hit every rule and every edge of the arithmetic.
TRICKY_ROWS = [
    ("2020-12-28", "P1", "10.00", "C1"),       # Monday of ISO week 2020-W53
    ("2020-12-31", "P2", "0.005", "C2"),       # half a cent rounds up to 1 cent
    ("2020-12-31", "NA", "12.345", ""),        # a product called NA; 1234.5 cents -> 1235
    ("2021-01-01", "null", ".5", "C3"),        # 2020-W53 still; 'null' is a product
    ("2021-01-03", " P1 ", " 7. ", "C1"),      # Sunday, trimmed fields
    ("2021-01-04", "P1", "+3", "C4"),          # 2021-W01
    ("2021-01-04", "P3", "1.125", "C4"),
    ("2021-01-04", "P3", "1.125", "C4"),       # exact duplicate of the row before
    ("2021-01-11", "P4", "999999999999.99", "C5"),  # the largest amount
    ("2021-01-12", "P4", "0.01", ""),
    ("2024-02-29", "P5", "1", "C6"),           # a real leap day
    ("2023-02-29", "P5", "1", "C6"),           # invalid_date
    ("2024-1-5", "P5", "1", "C6"),             # invalid_date (shape)
    ("0000-01-01", "P5", "1", "C6"),           # invalid_date (year 0)
    ("", "P5", "1", "C6"),                     # missing_date
    ("   ", "P5", "1", "C6"),                  # missing_date (blank)
    ("2024-03-01", "", "1", "C6"),             # missing_product_id
    ("2024-03-01", "P5", "\t", "C6"),          # missing_amount (blank)
    ("2024-03-01", "P5", "NaN", "C6"),         # invalid_amount
    ("2024-03-01", "P5", "1e3", "C6"),         # invalid_amount (exponent)
    ("2024-03-01", "P5", "1,000", "C6"),       # invalid_amount (separator)
    ("2024-03-01", "P5", "1234567890123", "C6"),  # invalid_amount (13 digits)
    ("2024-03-01", "P5", "0", "C6"),           # non_positive_amount
    ("2024-03-01", "P5", "0.004", "C6"),       # rounds to 0 cents: non_positive_amount
    ("2024-03-01", "P5", "-2.50", "C6"),       # non_positive_amount
    ("2024-03-02", "P6", "33.33", "C7"),       # Saturday
    ("2024-03-02", "P7", "33.33", "C7"),
    ("2024-03-02", "P7", "33.34", "C8"),
    ("2024-03-03", "P6", "100", ""),           # Sunday; ties for the top total below
    ("2024-03-04", "P6", "100", ""),
]


@pytest.fixture(scope="module")
def tricky_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("tricky") / "tricky.csv", TRICKY_ROWS)


@pytest.fixture(scope="module")
def tricky_pandas(tricky_csv, tmp_path_factory):
    output = tmp_path_factory.mktemp("tricky_pandas")
    run_engine(tricky_csv, output, mode="pandas")
    return output


def test_tricky_input_matches_the_oracle(tricky_csv, tricky_pandas):
    assert read_outputs(tricky_pandas) == expected_outputs([tricky_csv])


@pytest.mark.parametrize(
    "mode, settings",
    [
        ("dask", {"partition_size": "64B"}),
        ("dask", {"partition_size": "700B"}),
        ("dask", {"partition_size": "1MiB"}),
        ("auto", {}),
        ("distributed", {"partition_size": "200B", "cluster.workers": 2}),
    ],
    ids=["dask-64B", "dask-700B", "dask-1MiB", "auto", "distributed-local"],
)
def test_every_mode_gives_the_same_bytes_on_tricky_input(tricky_csv, tricky_pandas, tmp_path, mode, settings):
    result = run_engine(tricky_csv, tmp_path, mode=mode, **settings)
    assert result.report["input"]["partitions"] >= (2 if "64B" in str(settings) else 1)
    assert published_bytes(tmp_path) == published_bytes(tricky_pandas)


def test_external_scheduler_gives_the_same_bytes(tricky_csv, tricky_pandas, tmp_path, external_cluster):
    result = run_engine(tricky_csv, tmp_path, mode="distributed", partition_size="300B", **external_cluster.settings())
    assert result.report["backend"]["workers"] == 2
    assert published_bytes(tmp_path) == published_bytes(tricky_pandas)


@pytest.fixture(scope="module")
def dirty_pandas(dirty_300k, tmp_path_factory):
    output = tmp_path_factory.mktemp("dirty_pandas")
    run_engine(dirty_300k, output, mode="pandas")
    return output


def test_300k_dirty_rows_match_the_oracle(dirty_300k, dirty_pandas):
    expected = expected_outputs([dirty_300k])
    actual = read_outputs(dirty_pandas)
    for name in expected:
        assert actual[name] == expected[name], name
    by_reason = actual["data_quality_metrics"]["rejected_by_reason"]
    assert by_reason.pop("malformed_line") == 0  # only skipped on request (tests/test_quarantine.py)
    assert all(count > 0 for count in by_reason.values())
    assert actual["data_quality_metrics"]["duplicate_count"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, settings",
    [
        ("dask", {"partition_size": "1MiB"}),
        ("dask", {"partition_size": "3MiB"}),
        ("distributed", {"partition_size": "2MiB", "cluster.workers": 2}),
    ],
    ids=["dask-1MiB", "dask-3MiB", "distributed-local-2MiB"],
)
def test_300k_every_mode_gives_the_same_bytes(dirty_300k, dirty_pandas, tmp_path, mode, settings):
    run_engine(dirty_300k, tmp_path, mode=mode, **settings)
    assert published_bytes(tmp_path) == published_bytes(dirty_pandas)


@pytest.mark.slow
def test_300k_external_scheduler_gives_the_same_bytes(dirty_300k, dirty_pandas, tmp_path, external_cluster):
    run_engine(dirty_300k, tmp_path, mode="distributed", partition_size="2MiB", **external_cluster.settings())
    assert published_bytes(tmp_path) == published_bytes(dirty_pandas)


@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_categorical_ids_give_the_same_bytes(dirty_300k, dirty_pandas, tmp_path, mode):
    run_engine(dirty_300k, tmp_path, mode=mode, partition_size="2MiB", id_dtype="category")
    assert published_bytes(tmp_path) == published_bytes(dirty_pandas)
