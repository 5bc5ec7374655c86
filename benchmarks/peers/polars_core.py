"""Peer: the core job in Polars, as one lazy query run by the streaming engine.

The core job, as every peer does it: read the CSV with every column as text
(``infer_schema=False``: all ``String``, no NA strings, so ``NA``, ``null``... are
values, SPEC §2), reject the rows SPEC §3 rejects, aggregate per day and write Parquet.

* fields are trimmed of spaces and tabs; a missing (empty) field fails its rule;
* a date must be ``NNNN-NN-NN`` digits, a real calendar day, not year 0000;
* product_id must be present;
* an amount must be a plain decimal (optional sign, at most 12 integer digits, no
  exponent, separator, currency sign, ``NaN`` or ``inf``). It is turned into integer
  cents from its text, rounding half away from zero on the third decimal as
  docs/semantics.md does (Polars' own string-to-Decimal cast truncates), and must be > 0;
* per day: ``total_amount`` (exact cent sum, written as ``Decimal(38, 2)``),
  ``avg_amount``, ``transaction_count``, ``unique_products``, and ``total_amount_ma7``:
  the mean daily total over the 7 calendar days ending on the day (``rolling_mean_by``
  with a ``7d`` window over the date).

``scan_csv`` ... ``sink_parquet(engine="streaming")`` reads the file in batches; Polars
falls back to in-memory execution for any step the streaming engine lacks.

Usage::

    python benchmarks/peers/polars_core.py INPUT.csv OUTDIR

Writes ``OUTDIR/daily.parquet`` and prints one line ``polars_core: days=D rows_out=N -> PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

WS = " \t"
PLAIN_AMOUNT = r"^[+-]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)$"
DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def cents(text: pl.Expr) -> pl.Expr:
    """Integer cents of a plain decimal text, half away from zero (``0.125`` -> 13)."""
    unsigned = text.str.strip_chars_start("+-")
    whole = unsigned.str.extract(r"^([0-9]*)", 1).replace("", "0").cast(pl.Int64)
    frac3 = unsigned.str.extract(r"\.([0-9]*)$", 1).fill_null("").str.pad_end(3, "0")
    magnitude = (whole * 100 + frac3.str.slice(0, 2).cast(pl.Int64)
                 + (frac3.str.slice(2, 1) >= "5").cast(pl.Int64))
    return pl.when(text.str.starts_with("-")).then(-magnitude).otherwise(magnitude)


def core_query(source: str) -> pl.LazyFrame:
    """The daily table of the kept rows of ``source``, as a lazy query."""
    raw = pl.scan_csv(source, infer_schema=False)
    d = pl.col("date").str.strip_chars(WS)
    p = pl.col("product_id").str.strip_chars(WS)
    a = pl.col("amount").str.strip_chars(WS)
    valid = (
        d.str.contains(DATE_SHAPE)
        & ~d.str.starts_with("0000")
        & d.str.to_date("%Y-%m-%d", strict=False).is_not_null()
        & (p != "")
        & a.str.contains(PLAIN_AMOUNT)
    )
    kept = (
        raw.filter(valid)
        .select(date=d.str.to_date("%Y-%m-%d"), product_id=p, cents=cents(a))
        .filter(pl.col("cents") > 0)
    )
    daily = kept.group_by("date").agg(
        total_cents=pl.col("cents").sum(),
        transaction_count=pl.len().cast(pl.Int64),
        unique_products=pl.col("product_id").n_unique().cast(pl.Int64),
    )
    total = pl.col("total_cents") / 100
    return daily.sort("date").select(
        "date",
        total_amount=pl.col("total_cents").cast(pl.Decimal(38, 2)) / pl.lit(100),
        avg_amount=total / pl.col("transaction_count"),
        transaction_count="transaction_count",
        unique_products="unique_products",
        total_amount_ma7=total.rolling_mean_by("date", window_size="7d"),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/peers/polars_core.py INPUT.csv OUTDIR", file=sys.stderr)
        return 2
    source, outdir = Path(argv[0]), Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / "daily.parquet"
    core_query(str(source)).sink_parquet(target, engine="streaming")
    days, rows_out = pl.scan_parquet(target).select(pl.len(), pl.col("transaction_count").sum()).collect().row(0)
    print(f"polars_core: days={days} rows_out={rows_out} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
