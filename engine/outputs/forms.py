"""The written forms of a run's outputs: what each published file holds, cell by cell.

Each table output is written as CSV and Parquet, each JSON output as JSON, using the
forms of docs/semantics.md (money 2 decimals, ratios 4, dates `YYYY-MM-DD`, empty cell
or null for missing). The files are written into the run's staging folder
(engine.outputs.publication), never straight to their published names.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.outputs.publication import StagedOutputs

#: Column kinds of every table output, in column order.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "daily_sales_summary": (
        ("date", "date"), ("total_amount", "money"), ("avg_amount", "money"),
        ("transaction_count", "count"), ("unique_products", "count"),
    ),
    "weekly_aggregation": (
        ("week", "text"), ("week_start", "date"), ("weekly_total", "money"), ("daily_avg", "money"),
        ("daily_std", "money"), ("cv", "ratio"), ("weekly_transactions", "count"),
        ("avg_unique_products", "ratio"), ("weekend_days", "count"), ("days_with_sales", "count"),
    ),
}
TABLE_COLUMNS["enriched_daily_summary"] = TABLE_COLUMNS["daily_sales_summary"] + (
    ("total_amount_ma7", "money"), ("avg_amount_ma7", "money"),
    ("total_amount_change", "ratio"), ("avg_amount_change", "ratio"),
    ("day_of_week", "text"), ("is_weekend", "bool"),
)

#: The Arrow (and Parquet) type of each column kind.
ARROW_TYPES = {
    "date": pa.date32(), "money": pa.decimal128(18, 2), "ratio": pa.float64(),
    "count": pa.int64(), "bool": pa.bool_(), "text": pa.string(),
}


def csv_cell(value: Any, kind: str) -> str:
    """The CSV text of one value of the given kind."""
    if value is None or (not isinstance(value, (str, Decimal)) and pd.isna(value)):
        return ""
    if kind == "money":
        return f"{Decimal(value):.2f}"
    if kind == "ratio":
        return f"{Decimal(value):.4f}"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "date":
        return value.isoformat()
    return str(value)


def write_table_csv(frame: pd.DataFrame, name: str, path: Path) -> None:
    columns = TABLE_COLUMNS[name]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([column for column, _ in columns])
        cells = [[csv_cell(v, kind) for v in frame[column].tolist()] for column, kind in columns]
        writer.writerows(zip(*cells))


def arrow_table(frame: pd.DataFrame, name: str) -> pa.Table:
    """The table output with its published Arrow types."""
    columns = TABLE_COLUMNS[name]
    schema = pa.schema([(column, ARROW_TYPES[kind]) for column, kind in columns])
    data = {column: [_arrow_value(v, kind) for v in frame[column].tolist()] for column, kind in columns}
    return pa.Table.from_pydict(data, schema=schema)


def _arrow_value(value: Any, kind: str) -> Any:
    if value is None or (not isinstance(value, (str, Decimal, dt.date)) and pd.isna(value)):
        return None
    if kind == "ratio":
        return float(value)
    return value


def write_table_parquet(frame: pd.DataFrame, name: str, path: Path) -> None:
    pq.write_table(arrow_table(frame, name), path, compression="zstd")


def json_ready(value: Any) -> Any:
    """A value with Decimals as numbers and dates as `YYYY-MM-DD`, for json.dumps."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def write_json(value: Any, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(json_ready(value), handle, indent=2, allow_nan=False)
        handle.write("\n")


def write_outputs(results: dict[str, Any], staged: StagedOutputs, tables: tuple[str, ...], documents: tuple[str, ...]) -> None:
    """Write every output of a run into the staging folder."""
    for name in tables:
        write_table_csv(results[name], name, staged.path(f"{name}.csv"))
        write_table_parquet(results[name], name, staged.path(f"{name}.parquet"))
    for name in documents:
        write_json(results[name], staged.path(f"{name}.json"))


def write_user_output(name: str, value: Any, staged: StagedOutputs) -> int | None:
    """A user node's value as published files: a DataFrame (or Series) as `<name>.csv` and
    `<name>.parquet`, anything else as `<name>.json`. Returns the table's rows (None for
    JSON).

    A user table is published in a canonical form so that every mode gives the same
    bytes: a named index becomes columns (an unnamed one is dropped); rows are sorted by the
    columns, left to right (a Dask group-by has no row order); column types are the
    plain Arrow ones (int64, float64, bool, date32, timestamp, string). Its CSV cells are
    written as for the engine's tables (empty for missing, `true`/`false`, dates
    `YYYY-MM-DD`), numbers as Python writes them.
    """
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if not isinstance(value, pd.DataFrame):
        write_json(_plain(value), staged.path(f"{name}.json"))
        return None
    table = canonical_table(value)
    with open(staged.path(f"{name}.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.column_names)
        columns = [[_user_cell(v) for v in column.to_pylist()] for column in table.columns]
        writer.writerows(zip(*columns))
    pq.write_table(table, staged.path(f"{name}.parquet"), compression="zstd")
    return table.num_rows


def canonical_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as the Arrow table a user output is published as (see write_user_output)."""
    named = [name for name in frame.index.names if name is not None]
    frame = frame.reset_index(drop=not named)
    frame = frame.rename(columns=str)
    columns = {column: _plain_arrow(frame[column]) for column in frame.columns}
    table = pa.table(columns)
    if table.num_rows > 1 and table.num_columns:
        try:
            table = table.sort_by([(column, "ascending") for column in table.column_names])
        except pa.ArrowNotImplementedError:  # a type Arrow cannot sort keeps the node's order
            pass
    return table.replace_schema_metadata(None)


def _plain_arrow(column: pd.Series) -> pa.Array:
    """One column as a plain Arrow type, whatever pandas or Dask dtype it arrived in."""
    kind = column.dtype
    if isinstance(kind, pd.CategoricalDtype):
        column = column.astype(object)
    array = pa.array(column, from_pandas=True)
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_integer(array.type):
        return array.cast(pa.int64())
    if pa.types.is_floating(array.type):
        return array.cast(pa.float64())
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        return array.cast(pa.string())
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.timestamp("us", array.type.tz))
    return array


def _user_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if value != value else repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """A user node's value with numpy and pandas scalars as plain Python values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    if value is pd.NA or value is pd.NaT:
        return None
    return value
