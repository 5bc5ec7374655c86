"""The published schemas and the column lineage of every output.

Each output column lists the input columns it derives from and how: DIRECT
IDENTITY / TRANSFORMATION / AGGREGATION, and INDIRECT dependencies (the cleaning rules
FILTER rows on date, product_id and amount; daily outputs GROUP_BY and SORT on date;
moving and period figures use a WINDOW over dates). This is the dataflow's own
description of itself, kept next to the column kinds in engine.outputs.forms.
"""

from __future__ import annotations

from engine.dataflow import quarantine
from engine.outputs.forms import TABLE_COLUMNS

#: Published types of table columns, by kind (as in the Parquet files).
KIND_TYPES = {"date": "date", "money": "decimal(18,2)", "ratio": "double", "count": "bigint",
              "bool": "boolean", "text": "string"}

D, I = "DIRECT", "INDIRECT"
AGG, TRANSFORM, IDENT = "AGGREGATION", "TRANSFORMATION", "IDENTITY"
CLEANING_FILTER = [("date", I, "FILTER"), ("product_id", I, "FILTER"), ("amount", I, "FILTER")]
BY_DAY = [("date", I, "GROUP_BY"), ("date", I, "SORT")]
WINDOW = [("date", I, "WINDOW")]
SALES = [("amount", D, AGG)]
DAY_NAME = [("date", D, TRANSFORM)]

_DAILY = {
    "date": [("date", D, TRANSFORM)],
    "total_amount": SALES,
    "avg_amount": SALES,
    "transaction_count": SALES,
    "unique_products": [("product_id", D, AGG)],
}
_ENRICHED = {
    **_DAILY,
    "total_amount_ma7": SALES + WINDOW,
    "avg_amount_ma7": SALES + WINDOW,
    "total_amount_change": SALES + WINDOW,
    "avg_amount_change": SALES + WINDOW,
    "day_of_week": DAY_NAME,
    "is_weekend": DAY_NAME,
}
_WEEKLY = {
    "week": [("date", D, TRANSFORM)],
    "week_start": [("date", D, TRANSFORM)],
    **{name: SALES for name in ("weekly_total", "daily_avg", "daily_std", "cv", "weekly_transactions")},
    "avg_unique_products": [("product_id", D, AGG)],
    "weekend_days": [("date", D, AGG)],
    "days_with_sales": [("date", D, AGG)],
}
_EVERY_COLUMN = [(c, D, AGG) for c in ("date", "product_id", "amount", "customer_id")]
_RULE_COLUMNS = [(c, D, AGG) for c in ("date", "product_id", "amount")]
_QUALITY = {
    "raw_record_count": _EVERY_COLUMN, "cleaned_record_count": _RULE_COLUMNS, "data_loss_rate": _RULE_COLUMNS,
    "null_count": _EVERY_COLUMN, "duplicate_count": _EVERY_COLUMN, "rejected_by_reason": _RULE_COLUMNS,
    "null_count_by_column": _EVERY_COLUMN, "date_range": [("date", D, AGG)], "alerts": _EVERY_COLUMN,
}
_TREND = {
    "period_growth_rate": SALES + WINDOW,
    "max_sales_amount": SALES, "max_sales_date": [("date", D, IDENT), ("amount", I, "SORT")],
    "min_sales_amount": SALES, "min_sales_date": [("date", D, IDENT), ("amount", I, "SORT")],
    "weekday_avg_sales": SALES + [("date", I, "FILTER")], "weekend_avg_sales": SALES + [("date", I, "FILTER")],
    "weekend_premium": SALES + [("date", I, "GROUP_BY")], "volatility": SALES,
    "days_analyzed": [("date", D, AGG)],
}
_TOP = {
    "date": [("date", D, IDENT), ("amount", I, "SORT")],
    "total_amount": SALES, "transaction_count": SALES, "day_of_week": DAY_NAME, "is_weekend": DAY_NAME,
}

_RULES = [("date", D, TRANSFORM), ("product_id", D, TRANSFORM), ("amount", D, TRANSFORM)]
_QUARANTINE = {
    "file": [(c, I, "FILTER") for c in ("date", "product_id", "amount")],
    "line": [(c, I, "FILTER") for c in ("date", "product_id", "amount")],
    "reason": _RULES,
    "date": [("date", D, IDENT)], "product_id": [("product_id", D, IDENT)], "amount": [("amount", D, IDENT)],
    "customer_id": [("customer_id", D, TRANSFORM)],
    "detail": _RULES,
}

#: output -> (column -> [(input column, type, subtype)], dataset-wide dependencies)
COLUMN_LINEAGE: dict[str, tuple[dict[str, list], list]] = {
    "daily_sales_summary": (_DAILY, CLEANING_FILTER + BY_DAY),
    "enriched_daily_summary": (_ENRICHED, CLEANING_FILTER + BY_DAY),
    "weekly_aggregation": (_WEEKLY, CLEANING_FILTER + BY_DAY),
    "data_quality_metrics": (_QUALITY, []),
    "trend_analysis": (_TREND, CLEANING_FILTER + BY_DAY),
    "top_performing_days": (_TOP, CLEANING_FILTER + [("amount", I, "SORT")]),
    "rejected_rows": (_QUARANTINE, CLEANING_FILTER),
}

#: Published schema of the JSON outputs: top-level field -> JSON type.
JSON_FIELDS = {
    "data_quality_metrics": {
        "raw_record_count": "integer", "cleaned_record_count": "integer", "data_loss_rate": "number",
        "null_count": "integer", "duplicate_count": "integer", "rejected_by_reason": "object",
        "null_count_by_column": "object", "date_range": "object", "alerts": "array",
    },
    "trend_analysis": {
        "period_growth_rate": "number", "max_sales_amount": "number", "max_sales_date": "string",
        "min_sales_amount": "number", "min_sales_date": "string", "weekday_avg_sales": "number",
        "weekend_avg_sales": "number", "weekend_premium": "number", "volatility": "number",
        "days_analyzed": "integer",
    },
    "top_performing_days": {"date": "string", "total_amount": "number", "transaction_count": "integer",
                            "day_of_week": "string", "is_weekend": "boolean"},
}


def published_schema(output: str) -> list[tuple[str, str]]:
    """(column, type) of an output, in order."""
    if output in TABLE_COLUMNS:
        return [(column, KIND_TYPES[kind]) for column, kind in TABLE_COLUMNS[output]]
    if output == "rejected_rows":
        return [(column.name, str(column.type)) for column in quarantine.SCHEMA]
    return list(JSON_FIELDS[output].items())
