"""Clean: the row-level rules of SPEC §3 (which sales are real sales)."""

from __future__ import annotations

import pandas as pd

from engine.execution import frames
from engine.rules.validation import kept_rows, validate_rows


def validated_sales(raw_sales_data: pd.DataFrame) -> pd.DataFrame:
    """Every raw row with trimmed, typed fields and the first rule it breaks
    (`reject_reason`, 0 when it breaks none)."""
    return frames.map_partitions(validate_rows, raw_sales_data)


def cleaned_sales_data(validated_sales: pd.DataFrame, id_dtype: str) -> pd.DataFrame:
    """The sales that count: kept rows with `date` as a date and the amount in whole
    cents (`amount_cents`); `product_id` in the configured `id_dtype`."""
    return frames.map_partitions(kept_rows, validated_sales, id_dtype)
