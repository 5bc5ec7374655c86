"""Peer: the core job in DuckDB, as one SQL statement on DuckDB's own threads.

The core job, as every peer does it: read the CSV with every column as text (so ``NA``,
``null``... are values, SPEC §2), reject the rows SPEC §3 rejects, aggregate per day and
write Parquet. Here it is one ``COPY (query) TO ... (FORMAT parquet)``:

* fields are trimmed of spaces and tabs; a missing (empty) field fails its rule;
* a date must be ``NNNN-NN-NN`` digits, a real calendar day, not year 0000;
* product_id must be present;
* an amount must be a plain decimal (optional sign, at most 12 integer digits, no
  exponent, separator, currency sign, ``NaN`` or ``inf``); it becomes
  ``DECIMAL(18, 2)`` (DuckDB's cast rounds half away from zero, as docs/semantics.md
  does) and must be > 0 after that rounding;
* per day: ``total_amount`` (exact decimal sum), ``avg_amount``, ``transaction_count``,
  ``unique_products``, and ``total_amount_ma7``: the mean daily total over the 7
  calendar days ending on the day (a ``RANGE`` window, so days without sales are not
  counted as rows).

Usage::

    python benchmarks/peers/duckdb_core.py INPUT.csv OUTDIR

Writes ``OUTDIR/daily.parquet`` and prints one line ``duckdb_core: days=D rows_out=N -> PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

CORE_SQL = r"""
COPY (
    WITH trimmed AS (
        SELECT trim(date, ' ' || chr(9)) AS d,
               trim(product_id, ' ' || chr(9)) AS p,
               trim(amount, ' ' || chr(9)) AS a
        FROM read_csv({source}, header = true, delim = ',', quote = '"', escape = '"',
                      all_varchar = true)
    ),
    kept AS (
        SELECT try_cast(d AS DATE) AS date, p, try_cast(a AS DECIMAL(18, 2)) AS amount
        FROM trimmed
        WHERE regexp_full_match(d, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
          AND NOT starts_with(d, '0000')
          AND try_cast(d AS DATE) IS NOT NULL
          AND p <> ''
          AND regexp_full_match(a, '[+-]?([0-9]{{1,12}}(\.[0-9]*)?|\.[0-9]+)')
          AND try_cast(a AS DECIMAL(18, 2)) > 0
    ),
    daily AS (
        SELECT date,
               sum(amount) AS total_amount,
               avg(amount) AS avg_amount,
               count(*) AS transaction_count,
               count(DISTINCT p) AS unique_products
        FROM kept
        GROUP BY date
    )
    SELECT *,
           avg(total_amount) OVER (
               ORDER BY date RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW
           ) AS total_amount_ma7
    FROM daily
    ORDER BY date
) TO {target} (FORMAT parquet)
"""


def _literal(text: str) -> str:
    """``text`` as an SQL string literal (COPY takes no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/peers/duckdb_core.py INPUT.csv OUTDIR", file=sys.stderr)
        return 2
    source, outdir = Path(argv[0]), Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / "daily.parquet"
    con = duckdb.connect()
    try:
        con.execute(CORE_SQL.format(source=_literal(str(source)), target=_literal(str(target))))
        days, rows_out = con.execute(
            "SELECT count(*), coalesce(sum(transaction_count), 0) FROM read_parquet(?)", [str(target)]
        ).fetchone()
    finally:
        con.close()
    print(f"duckdb_core: days={days} rows_out={rows_out} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
