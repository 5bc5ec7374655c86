"""Peer baseline: a naive pandas script, as the original tutorial would write it.

This is *deliberately* the straightforward version a tutorial shows, not an optimised
one and not the product's semantics. The benchmarks run it next to the engine so the
engine's time and memory can be compared with "what people would write by hand". Do
not "fix" it; its naivety is the point:

* ``pd.read_csv(path)`` with all defaults: every column is inferred (ids become
  ``int64``/``object``/``str``, amounts ``float64``), and pandas' default NA parsing
  turns ``NA``, ``n/a``, ``null``, ``None``, ``NaN`` ... into missing values (the SPEC
  says those are values, not missing). The whole file is loaded into memory at once.
* rows with a missing ``date``, ``product_id`` or ``amount`` are dropped;
* ``pd.to_datetime(errors="coerce")`` parses dates (format inferred from the data, not
  strict ``YYYY-MM-DD``) and ``pd.to_numeric(errors="coerce")`` parses amounts;
  unparseable rows and ``amount <= 0`` are dropped. ``inf`` is kept (it is > 0).
* amounts stay ``float64``: sums are floating-point sums, not exact integer cents;
* daily summary: ``groupby`` date -> sum, mean, count of amount and nunique of
  product_id, plus a 7-*row* rolling mean of the daily total (``min_periods=1``), not the
  SPEC's 7-calendar-day window;
* the daily summary is written with ``DataFrame.to_parquet`` (pyarrow), non-atomically.

No rejection accounting, no lineage, no logging beyond one summary line.

Usage::

    python benchmarks/naive_pandas.py INPUT.csv OUTPUT_DIR

Writes ``OUTPUT_DIR/daily_sales_summary.parquet`` and prints one line
``naive_pandas: rows_in=N rows_out=M days=D -> PATH`` to stdout.
"""

import os
import sys

import pandas as pd


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/naive_pandas.py INPUT.csv OUTPUT_DIR", file=sys.stderr)
        return 2
    input_path, output_dir = argv

    # Load the data
    df = pd.read_csv(input_path)
    rows_in = len(df)

    # Clean the data
    df = df.dropna(subset=["date", "product_id", "amount"])
    df["date"] = pd.to_datetime(df["date"], errors="coerce")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce")
    df = df.dropna(subset=["date", "amount"])
    df = df[df["amount"] > 0]

    # Daily summary
    daily = df.groupby("date").agg(
        total_amount=("amount", "sum"),
        avg_amount=("amount", "mean"),
        transaction_count=("amount", "count"),
        unique_products=("product_id", "nunique"),
    )
    daily = daily.reset_index()
    daily["total_amount_ma7"] = daily["total_amount"].rolling(window=7, min_periods=1).mean()

    # Save the result
    os.makedirs(output_dir, exist_ok=True)
    out_path = os.path.join(output_dir, "daily_sales_summary.parquet")
    daily.to_parquet(out_path, index=False)

    print(f"naive_pandas: rows_in={rows_in} rows_out={len(df)} days={len(daily)} -> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
