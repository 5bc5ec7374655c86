"""Reduce: every figure that needs the whole (large) input, computed in one pass.

The reductions are declared together and materialised together, so the input is read
once per run whatever the mode; everything downstream works on their small results.
"""

from __future__ import annotations

import pandas as pd
from hamilton.function_modifiers import extract_fields

from engine import frames
from engine.sources import ReadPlan
from engine.validation import KEPT, PROFILE_COMBINE, RAW_COLUMNS, REJECT_REASONS, file_profile


@extract_fields(
    {
        "daily_sales": pd.DataFrame,
        "input_profile": pd.DataFrame,
        "raw_record_count": int,
        "missing_cells_by_column": dict,
        "rejected_by_reason": dict,
        "distinct_raw_rows": int,
    }
)
def sales_reductions(validated_sales: pd.DataFrame, cleaned_sales_data: pd.DataFrame, read_plan: ReadPlan) -> dict:
    """The large-data reductions: per-day sales (exact integer cents), a profile of each
    input file (rows, missing cells, value ranges), rejections per reason, and the
    number of distinct raw rows."""
    by_date = cleaned_sales_data.groupby("date")
    computed = frames.materialize(
        {
            "totals": by_date.agg(total_cents=("amount_cents", "sum"), transaction_count=("amount_cents", "count")),
            "products": by_date["product_id"].nunique(),
            "reasons": validated_sales["reject_reason"].value_counts(),
            "profiles": frames.map_partitions(file_profile, validated_sales).groupby("source_file").agg(PROFILE_COMBINE),
            "distinct": validated_sales["fingerprint"].nunique(),
        }
    )
    profile = _input_profile(computed["profiles"], read_plan)
    reasons = computed["reasons"]
    return {
        "daily_sales": _daily_table(computed["totals"], computed["products"]),
        "input_profile": profile,
        "raw_record_count": int(profile["rows"].sum()),
        "missing_cells_by_column": {c: int(profile[f"missing_{c}"].sum()) for c in RAW_COLUMNS},
        "rejected_by_reason": {r: int(reasons.get(code, 0)) for code, r in enumerate(REJECT_REASONS, start=KEPT + 1)},
        "distinct_raw_rows": int(computed["distinct"]),
    }


def _input_profile(profiles: pd.DataFrame, read_plan: ReadPlan) -> pd.DataFrame:
    """One row per input file, in plan order (a file without the optional customer_id
    column has no customer cells to be missing)."""
    profile = profiles.reindex(range(len(read_plan.files)))
    profile[["rows", *(f"missing_{c}" for c in RAW_COLUMNS)]] = profile[
        ["rows", *(f"missing_{c}" for c in RAW_COLUMNS)]].fillna(0).astype("int64")
    profile.loc[list(read_plan.files_without_customer_id), "missing_customer_id"] = 0
    profile.insert(0, "path", [f.path for f in read_plan.files])
    return profile.reset_index(drop=True)


def _daily_table(totals: pd.DataFrame, products: pd.Series) -> pd.DataFrame:
    """One row per sales day, ascending: date, total_cents, transaction_count, unique_products."""
    daily = totals.join(products.rename("unique_products"), how="left").sort_index()
    daily.index = pd.Index([d for d in daily.index], name="date", dtype=object)
    return daily.reset_index().astype(
        {"total_cents": "int64", "transaction_count": "int64", "unique_products": "int64"}
    )
