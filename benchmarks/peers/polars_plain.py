"""Peer: the core job as a data engineer would first write it in Polars.

The Polars counterpart of ``duckdb_plain.py``: a lazy ``scan_csv`` with the four columns
as text, ``str.to_date(strict=False)`` and a cast of the amount to a float, the same
filter, a per-day group-by (floating sums, distinct products), the 7-calendar-day moving
mean of the daily total (``rolling_mean_by`` over ``7d``), collected and written with
``write_parquet``. Not every SPEC §3 rule is applied exactly (Polars' cast does not trim
spaces around an amount, DuckDB's does, so the two plain peers keep slightly different
rows): ``polars_core.py`` is the exact-rule peer.

Usage::

    python benchmarks/peers/polars_plain.py INPUT.csv OUTDIR

Writes ``OUTDIR/daily.parquet`` and prints ``polars_plain: days=D rows_out=N -> PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/peers/polars_plain.py INPUT.csv OUTDIR", file=sys.stderr)
        return 2
    source, outdir = Path(argv[0]), Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / "daily.parquet"
    text = {name: pl.String for name in ("date", "product_id", "amount", "customer_id")}
    daily = (
        pl.scan_csv(source, schema_overrides=text, infer_schema=False)
        .select(
            pl.col("date").str.to_date("%Y-%m-%d", strict=False).alias("d"),
            pl.col("product_id"),
            pl.col("amount").cast(pl.Float64, strict=False).alias("a"),
        )
        .filter(pl.col("d").is_not_null() & pl.col("product_id").is_not_null()
                & (pl.col("product_id").str.strip_chars() != "") & (pl.col("a") > 0))
        .group_by("d")
        .agg(pl.col("a").sum().alias("total_amount"), pl.col("a").mean().alias("avg_amount"),
             pl.len().alias("transaction_count"), pl.col("product_id").n_unique().alias("unique_products"))
        .sort("d")
        .with_columns(pl.col("total_amount").rolling_mean_by("d", window_size="7d").alias("ma7"))
        .collect()
    )
    daily.write_parquet(target)
    print(f"polars_plain: days={daily.height} rows_out={int(daily['transaction_count'].sum())} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
