"""Clean: the row-level rules of SPEC §3 (which sales are real sales)."""

from __future__ import annotations

import pandas as pd

from engine.dataflow.derivation import derives
from engine.execution import frames
from engine.rules.validation import kept_rows, validate_rows


@derives(
    date="raw_sales_data.date TRANSFORMATION",
    product_id="raw_sales_data.product_id TRANSFORMATION",
    amount_cents="raw_sales_data.amount TRANSFORMATION",
    customer_id="raw_sales_data.customer_id IDENTITY",
    reject_reason=[f"raw_sales_data.{column} TRANSFORMATION" for column in ("date", "product_id", "amount")],
    missing_cells="raw_sales_data TRANSFORMATION",
    fingerprint="raw_sales_data TRANSFORMATION",
    source_file=[],
    line_position=[],
    date_text="raw_sales_data.date IDENTITY",
    product_id_text="raw_sales_data.product_id IDENTITY",
    amount_text="raw_sales_data.amount IDENTITY",
)
def validated_sales(raw_sales_data: pd.DataFrame) -> pd.DataFrame:
    """Every raw row with trimmed, typed fields and the first rule it breaks
    (`reject_reason`, 0 when it breaks none)."""
    return frames.map_partitions(validate_rows, raw_sales_data)


@derives(
    date="validated_sales.date IDENTITY",
    product_id="validated_sales.product_id IDENTITY",
    amount_cents="validated_sales.amount_cents IDENTITY",
    customer_id="validated_sales.customer_id IDENTITY",
    dataset="validated_sales.reject_reason FILTER",
)
def cleaned_sales_data(validated_sales: pd.DataFrame, id_dtype: str) -> pd.DataFrame:
    """The sales that count: kept rows with `date` as a date and the amount in whole
    cents (`amount_cents`); `product_id` in the configured `id_dtype`."""
    return frames.map_partitions(kept_rows, validated_sales, id_dtype)
