"""Peer: the core job as a data engineer would first write it in DuckDB.

This is the plain script a user choosing DuckDB instead of the engine would write: read
the four columns as text, parse the date and the amount with DuckDB's own functions, keep
rows with a date, a non-blank product and a positive amount, aggregate per day (floating
sums), add the 7-calendar-day moving mean of the daily total, write Parquet. It does not
apply every SPEC §3 rule exactly (no cents rounding, `1e3` and `inf` pass as amounts, no
trimming of dates): `duckdb_core.py` is the exact-rule peer.

Usage::

    python benchmarks/peers/duckdb_plain.py INPUT.csv OUTDIR

Writes ``OUTDIR/daily.parquet`` and prints ``duckdb_plain: days=D rows_out=N -> PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

PLAIN_SQL = """
COPY (
  WITH c AS (SELECT try_strptime(date, '%Y-%m-%d')::DATE AS d, product_id, try_cast(amount AS DOUBLE) AS a
             FROM read_csv({source}, header=true, columns={{'date':'VARCHAR','product_id':'VARCHAR',
                                                          'amount':'VARCHAR','customer_id':'VARCHAR'}})),
       k AS (SELECT * FROM c WHERE d IS NOT NULL AND product_id IS NOT NULL AND trim(product_id) <> '' AND a > 0),
       g AS (SELECT d, sum(a) AS total_amount, avg(a) AS avg_amount, count(*) AS transaction_count,
                    count(DISTINCT product_id) AS unique_products FROM k GROUP BY d)
  SELECT *, avg(total_amount) OVER (ORDER BY d RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW) AS ma7
  FROM g ORDER BY d
) TO {target} (FORMAT parquet)
"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/peers/duckdb_plain.py INPUT.csv OUTDIR", file=sys.stderr)
        return 2
    source, outdir = Path(argv[0]), Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / "daily.parquet"
    con = duckdb.connect()
    try:
        con.execute(PLAIN_SQL.format(source=_literal(str(source)), target=_literal(str(target))))
        days, rows_out = con.execute(
            "SELECT count(*), coalesce(sum(transaction_count), 0) FROM read_parquet(?)", [str(target)]).fetchone()
    finally:
        con.close()
    print(f"duckdb_plain: days={days} rows_out={rows_out} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
