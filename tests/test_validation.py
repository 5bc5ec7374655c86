"""The row rules of SPEC §3 on single cells, one partition at a time."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from engine.rules.validation import KEPT, REJECT_REASONS, file_profile, is_missing, kept_rows, validate_rows

TEXT = pd.ArrowDtype(pa.string())


def _raw(rows):
    columns = list(zip(*rows)) if rows else [[], [], [], []]
    frame = pd.DataFrame({name: pd.array(list(values), dtype=TEXT)
                          for name, values in zip(("date", "product_id", "amount", "customer_id"), columns)})
    frame["source_file"] = 0
    frame["line_position"] = range(len(frame))
    return frame


def _reason(date, product, amount):
    code = validate_rows(_raw([(date, product, amount, None)]))["reject_reason"].iloc[0]
    return "kept" if code == KEPT else REJECT_REASONS[code - 1]


@pytest.mark.parametrize(
    "date, product, amount, expected",
    [
        ("2024-02-29", "P", "1", "kept"),
        (None, None, None, "missing_date"),            # first rule wins
        (" \t ", "P", "1", "missing_date"),
        ("2023-02-29", None, None, "invalid_date"),
        ("2024-04-31", "P", "1", "invalid_date"),
        ("2024/01/05", "P", "1", "invalid_date"),
        ("2024-01-05T00:00", "P", "1", "invalid_date"),
        ("0000-01-01", "P", "1", "invalid_date"),
        ("2024-01-05", "  ", "1", "missing_product_id"),
        ("2024-01-05", "NA", None, "missing_amount"),  # 'NA' is a product
        ("2024-01-05", "P", "NA", "invalid_amount"),
        ("2024-01-05", "P", "inf", "invalid_amount"),
        ("2024-01-05", "P", "1e2", "invalid_amount"),
        ("2024-01-05", "P", "$5", "invalid_amount"),
        ("2024-01-05", "P", "-", "invalid_amount"),
        ("2024-01-05", "P", ".", "invalid_amount"),
        ("2024-01-05", "P", "1234567890123", "invalid_amount"),
        ("2024-01-05", "P", "-0.01", "non_positive_amount"),
        ("2024-01-05", "P", "0.0049", "non_positive_amount"),
        ("2024-01-05", "P", "0.005", "kept"),
        ("2024-01-05", "P", " 5. ", "kept"),
    ],
)
def test_first_failing_rule_is_the_reason(date, product, amount, expected):
    assert _reason(date, product, amount) == expected


@pytest.mark.parametrize(
    "text, cents",
    [("12.345", 1235), ("12.344", 1234), ("0.005", 1), (".5", 50), ("5.", 500), ("+3", 300),
     ("999999999999.99", 99999999999999), ("1.999", 200), ("007.10", 710)],
)
def test_amounts_become_whole_cents(text, cents):
    kept = kept_rows(validate_rows(_raw([("2024-01-05", "P", text, None)])))
    assert kept["amount_cents"].tolist() == [cents]
    assert kept["amount_cents"].dtype == "int64"


def test_missing_means_null_empty_or_blank_only():
    column = pd.Series(pd.array([None, "", " ", "\t", "NA", "null", "None", "NaN", "n/a", "x"], dtype=TEXT))
    assert is_missing(column).tolist() == [True] * 4 + [False] * 6


def test_file_profile_counts_missing_cells_and_value_ranges_per_file():
    raw = _raw([("2024-01-02", "p", "1.50", None), ("", "p", "abc", "C"), ("2024-01-01", " ", "-2", " ")])
    raw["source_file"] = [0, 0, 1]
    profile = file_profile(validate_rows(raw)).set_index("source_file")
    assert profile.loc[0].to_dict() == {
        "rows": 2, "missing_date": 1, "missing_product_id": 0, "missing_amount": 0, "missing_customer_id": 1,
        "amount_min": 150.0, "amount_max": 150.0, "date_min": 19724.0, "date_max": 19724.0}
    assert profile.loc[1, "missing_product_id"] == 1 and profile.loc[1, "missing_customer_id"] == 1
    assert profile.loc[1, "amount_min"] == -200.0  # a valid number, even if not a valid sale


def test_empty_partition_keeps_its_shape():
    validated = validate_rows(_raw([]))
    assert list(validated.columns) == ["date", "product_id", "amount_cents", "customer_id", "reject_reason",
                                       "missing_cells", "fingerprint", "source_file", "line_position",
                                       "date_text", "product_id_text", "amount_text"]
    assert list(kept_rows(validated).columns) == ["date", "product_id", "amount_cents", "customer_id"]
    assert len(file_profile(validated)) == 0
