"""Independent reference implementation ("oracle") of the engine's outputs, for the tests.

This module recomputes every output of a run from plain CSV files, following
the product specification (SPEC.md sections 2-4) and ``docs/semantics.md`` literally. It shares no
code with the ``engine`` package and is built differently on purpose:

* DuckDB SQL reads the files (every column as text, no type sniffing), validates the rows,
  assigns the reject reasons, turns amounts into whole cents and does every aggregation
  over rows (daily sums, counts, distinct products, null counts, duplicates);
* exact Python arithmetic (``fractions.Fraction``, integer square roots) derives the small
  figures on top (moving averages, percent changes, standard deviations, weekly and trend
  numbers), and each figure is rounded once, half away from zero, when it is written.

``expected_outputs`` returns every output in its written form: CSV tables as lists of
``{column: cell text}`` and JSON outputs as ``json.load`` would return them.

Readings chosen where the documents leave room:

* whitespace means spaces and tabs only, for both "missing" and trimming;
* duplicates: cells are compared as read, untrimmed, byte for byte; an empty cell (or an
  absent ``customer_id`` column) equals an empty cell, but a blank ``"  "`` is text;
* blank lines are skipped (not data rows); a row with the wrong number of fields, a field
  with a line break, a header-only file or a missing required column raises an error;
* a negative figure that rounds to zero is written without its sign (``0.0000``);
* the data-loss alert compares the exact rate with the threshold; its ``value`` is the
  rounded rate;
* the null-count alert counts the missing cells of the required columns only (SQL over
  the raw rows, apart from ``null_count``): an empty ``customer_id`` is allowed;
* square roots are rounded exactly (integer square root), which is what 50 significant
  digits give in every case but a tie hidden beyond the 50th digit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from math import isqrt
from pathlib import Path

import duckdb

COLUMNS = ("date", "product_id", "amount", "customer_id")
REQUIRED = COLUMNS[:3]
REASONS = (
    "missing_date",
    "invalid_date",
    "missing_product_id",
    "missing_amount",
    "invalid_amount",
    "non_positive_amount",
)
MONEY, RATIO = 2, 4  # decimals written for money and for ratios / percents / count means

DAILY_COLUMNS = ("date", "total_amount", "avg_amount", "transaction_count", "unique_products")
ENRICHED_COLUMNS = DAILY_COLUMNS + (
    "total_amount_ma7",
    "avg_amount_ma7",
    "total_amount_change",
    "avg_amount_change",
    "day_of_week",
    "is_weekend",
)
WEEKLY_COLUMNS = (
    "week",
    "week_start",
    "weekly_total",
    "daily_avg",
    "daily_std",
    "cv",
    "weekly_transactions",
    "avg_unique_products",
    "weekend_days",
    "days_with_sales",
)

# Plain CSV, every column text; the options the sniffer could otherwise guess are fixed.
READ_CSV = (
    "read_csv(?, header = true, delim = ',', quote = '\"', escape = '\"', all_varchar = true,"
    " skip = 0, comment = '', strict_mode = true, null_padding = false)"
)

# Trimmed text of a field (spaces and tabs); '' or NULL means the cell is missing.
WS = "' ' || chr(9)"

CLASSIFY_SQL = f"""
CREATE TABLE rows AS
WITH trimmed AS (
    SELECT rowid AS n, trim(date, {WS}) AS d, trim(product_id, {WS}) AS p, trim(amount, {WS}) AS a
    FROM raw
),
parsed AS (
    SELECT *,
        regexp_full_match(a, '[+-]?([0-9]{{1,12}}(\\.[0-9]*)?|\\.[0-9]+)') AS plain_amount,
        regexp_extract(a, '^[+-]?([0-9]*)', 1) AS int_digits,
        rpad(regexp_extract(a, '\\.([0-9]*)$', 1), 3, '0') AS frac3
    FROM trimmed
),
with_cents AS (
    SELECT *,
        CASE WHEN plain_amount THEN
            (CASE WHEN starts_with(a, '-') THEN -1 ELSE 1 END)
            * (coalesce(try_cast(nullif(int_digits, '') AS HUGEINT), 0) * 100
               + CAST(substr(frac3, 1, 2) AS INTEGER)
               + CASE WHEN substr(frac3, 3, 1) >= '5' THEN 1 ELSE 0 END)
        END AS cents
    FROM parsed
)
SELECT n, try_cast(d AS DATE) AS day, p, cents,
    CASE
        WHEN coalesce(d, '') = '' THEN 'missing_date'
        WHEN NOT regexp_full_match(d, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
             OR starts_with(d, '0000')
             OR try_cast(d AS DATE) IS NULL THEN 'invalid_date'
        WHEN coalesce(p, '') = '' THEN 'missing_product_id'
        WHEN coalesce(a, '') = '' THEN 'missing_amount'
        WHEN NOT plain_amount THEN 'invalid_amount'
        WHEN cents <= 0 THEN 'non_positive_amount'
    END AS reason
FROM with_cents
"""

DAILY_SQL = """
SELECT day, sum(cents) AS total_cents, count(*) AS transactions,
       count(DISTINCT p) AS unique_products
FROM rows WHERE reason IS NULL
GROUP BY day ORDER BY day
"""


# ----------------------------------------------------------------------------- public API


def expected_outputs(
    paths: list[str | Path],
    *,
    top_n: int = 5,
    max_data_loss_rate: float = 10.0,
    max_null_count: int = 100,
) -> dict:
    """All outputs of a run over the CSV files ``paths``, in their written forms."""
    con = duckdb.connect()
    try:
        _load_raw(con, [str(p) for p in paths])
        con.execute(CLASSIFY_SQL)
        metrics = _quality_metrics(con, max_data_loss_rate, max_null_count)
        days = [_Day(*row) for row in con.execute(DAILY_SQL).fetchall()]
    finally:
        con.close()
    return {
        "daily_sales_summary": [_daily_cells(day) for day in days],
        "enriched_daily_summary": _enriched(days),
        "weekly_aggregation": _weekly(days),
        "data_quality_metrics": metrics,
        "trend_analysis": _trend(days),
        "top_performing_days": _top_days(days, top_n),
    }


def row_reasons(rows: list[tuple[str | None, str | None, str | None, str | None]]) -> list[str | None]:
    """The reject reason of each (date, product_id, amount, customer_id) row, in order
    (None: kept), by the same SQL rules."""
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE raw (date VARCHAR, product_id VARCHAR, amount VARCHAR, customer_id VARCHAR)")
        con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", rows)
        con.execute(CLASSIFY_SQL)
        return [reason for (reason,) in con.execute("SELECT reason FROM rows ORDER BY n").fetchall()]
    finally:
        con.close()


# ------------------------------------------------------------------------ reading (DuckDB)


def _load_raw(con: duckdb.DuckDBPyConnection, paths: list[str]) -> None:
    """Table ``raw``: the four fields of every data row of every file, as read."""
    if not paths:
        raise ValueError("no input files")
    con.execute(
        "CREATE TABLE raw (date VARCHAR, product_id VARCHAR, amount VARCHAR,"
        " customer_id VARCHAR, has_customer_column BOOLEAN)"
    )
    for path in paths:
        header = [d[0] for d in con.execute(f"SELECT * FROM {READ_CSV} LIMIT 0", [path]).description]
        absent = [c for c in REQUIRED if c not in header]
        if absent:
            raise ValueError(f"{path}: missing required column(s) {', '.join(absent)}")
        has_customer = "customer_id" in header
        customer = "customer_id" if has_customer else "NULL"
        line_break = " OR ".join(
            f"regexp_matches({_ident(c)}, '[\\r\\n]')" for c in header
        )
        rows, broken = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {line_break}) FROM {READ_CSV}", [path]
        ).fetchone()
        if rows == 0:
            raise ValueError(f"{path}: no data rows")
        if broken:
            raise ValueError(f"{path}: a field contains a line break")
        con.execute(
            f"INSERT INTO raw SELECT date, product_id, amount, {customer}, {has_customer}"
            f" FROM {READ_CSV}",
            [path],
        )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quality_metrics(con: duckdb.DuckDBPyConnection, max_loss: float, max_nulls: int) -> dict:
    """``data_quality_metrics`` as json.load would return it."""
    missing = {c: f"coalesce(trim({c}, {WS}), '') = ''" for c in COLUMNS}
    null_sql = ", ".join(
        f"count(*) FILTER (WHERE {missing[c]}"
        + (" AND has_customer_column" if c == "customer_id" else "")
        + ")"
        for c in COLUMNS
    )
    nulls = dict(zip(COLUMNS, con.execute(f"SELECT {null_sql} FROM raw").fetchone()))
    # Cells compare as read: an empty cell equals an empty cell, a blank one is text.
    keys = ", ".join(f"coalesce({c}, '')" for c in COLUMNS)
    (duplicates,) = con.execute(
        f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM raw GROUP BY {keys})"
    ).fetchone()
    by_reason = dict.fromkeys(REASONS, 0)
    by_reason["malformed_line"] = 0  # the oracle reads only well-formed CSV
    by_reason.update(con.execute("SELECT reason, count(*) FROM rows GROUP BY reason").fetchall())
    kept = by_reason.pop(None, 0)
    raw, first, last = con.execute(
        "SELECT count(*), min(day) FILTER (WHERE reason IS NULL),"
        " max(day) FILTER (WHERE reason IS NULL) FROM rows"
    ).fetchone()
    loss = Fraction(100 * (raw - kept), raw)
    null_count = sum(nulls.values())
    # Cell by cell over the required columns, apart from the per-column counts above.
    required_cells = " UNION ALL ".join(f"SELECT {c} AS cell FROM raw" for c in REQUIRED)
    (required_nulls,) = con.execute(
        f"SELECT count(*) FROM ({required_cells}) WHERE coalesce(trim(cell, {WS}), '') = ''"
    ).fetchone()
    alerts = []
    if loss > Fraction(max_loss):
        alerts.append(_alert("high_data_loss_rate", _number(loss, RATIO), max_loss))
    if required_nulls > max_nulls:
        alerts.append(_alert("high_null_count", required_nulls, max_nulls))
    return {
        "raw_record_count": raw,
        "cleaned_record_count": kept,
        "data_loss_rate": _number(loss, RATIO),
        "null_count": null_count,
        "duplicate_count": duplicates,
        "rejected_by_reason": by_reason,
        "null_count_by_column": nulls,
        "date_range": {"min": _iso(first), "max": _iso(last)},
        "alerts": alerts,
    }


def _alert(name: str, value, threshold) -> dict:
    return {"name": name, "severity": "warning", "value": value, "threshold": threshold}


# ---------------------------------------------------------------- exact derived figures


@dataclass(frozen=True)
class _Day:
    """One daily summary row, as aggregated by DuckDB."""

    date: dt.date
    total_cents: int
    transactions: int
    unique_products: int

    @property
    def total(self) -> Fraction:
        return Fraction(self.total_cents, 100)

    @property
    def avg(self) -> Fraction:
        return Fraction(self.total_cents, 100 * self.transactions)

    @property
    def weekend(self) -> bool:
        return self.date.weekday() >= 5


@dataclass(frozen=True)
class _Root:
    """The exact square root of a non-negative rational number."""

    square: Fraction


def _mean(values: list) -> Fraction | None:
    return Fraction(sum(values), len(values)) if values else None


def _sample_std(values: list[Fraction]) -> _Root | None:
    if len(values) < 2:
        return None
    mean = _mean(values)
    return _Root(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pct_change(previous: Fraction | None, current: Fraction) -> Fraction | None:
    if previous is None or previous == 0:
        return None
    return 100 * (current - previous) / previous


def _daily_cells(day: _Day) -> dict:
    return {
        "date": day.date.isoformat(),
        "total_amount": _fixed(day.total, MONEY),
        "avg_amount": _fixed(day.avg, MONEY),
        "transaction_count": str(day.transactions),
        "unique_products": str(day.unique_products),
    }


def _enriched(days: list[_Day]) -> list[dict]:
    rows = []
    for i, day in enumerate(days):
        # days apart, not day - 6 days: that is before 0001-01-01 in the first week of year 1
        window = [d for d in days[: i + 1] if (day.date - d.date).days <= 6]
        previous = days[i - 1] if i else None
        row = _daily_cells(day)
        row.update(
            total_amount_ma7=_fixed(_mean([d.total for d in window]), MONEY),
            avg_amount_ma7=_fixed(_mean([d.avg for d in window]), MONEY),
            total_amount_change=_fixed(_pct_change(previous and previous.total, day.total), RATIO),
            avg_amount_change=_fixed(_pct_change(previous and previous.avg, day.avg), RATIO),
            day_of_week=day.date.strftime("%A"),
            is_weekend=_bool(day.weekend),
        )
        rows.append(row)
    return rows


def _weekly(days: list[_Day]) -> list[dict]:
    weeks: dict[tuple[int, int], list[_Day]] = {}
    for day in days:
        weeks.setdefault(day.date.isocalendar()[:2], []).append(day)
    rows = []
    for (year, week), members in weeks.items():
        totals = [d.total for d in members]
        avg = _mean(totals)
        std = _sample_std(totals)
        rows.append(
            {
                "week": f"{year:04d}-W{week:02d}",
                "week_start": dt.date.fromisocalendar(year, week, 1).isoformat(),
                "weekly_total": _fixed(sum(totals), MONEY),
                "daily_avg": _fixed(avg, MONEY),
                "daily_std": _fixed(std, MONEY),
                "cv": _fixed(std and _Root(std.square / avg**2), RATIO),
                "weekly_transactions": str(sum(d.transactions for d in members)),
                "avg_unique_products": _fixed(_mean([d.unique_products for d in members]), RATIO),
                "weekend_days": str(sum(d.weekend for d in members)),
                "days_with_sales": str(len(members)),
            }
        )
    return rows


def _trend(days: list[_Day]) -> dict:
    totals = [d.total for d in days]
    weekday = _mean([d.total for d in days if not d.weekend])
    weekend = _mean([d.total for d in days if d.weekend])
    premium = (weekend / weekday - 1) * 100 if weekday and weekend is not None else None
    growth = _pct_change(_mean(totals[:7]), _mean(totals[-7:])) if len(days) >= 2 else None
    best = min(days, key=lambda d: (-d.total, d.date), default=None)
    worst = min(days, key=lambda d: (d.total, d.date), default=None)
    return {
        "period_growth_rate": _number(growth, RATIO),
        "max_sales_amount": _number(best and best.total, MONEY),
        "max_sales_date": _iso(best and best.date),
        "min_sales_amount": _number(worst and worst.total, MONEY),
        "min_sales_date": _iso(worst and worst.date),
        "weekday_avg_sales": _number(weekday, MONEY),
        "weekend_avg_sales": _number(weekend, MONEY),
        "weekend_premium": _number(premium, RATIO),
        "volatility": _number(_sample_std(totals), MONEY),
        "days_analyzed": len(days),
    }


def _top_days(days: list[_Day], top_n: int) -> list[dict]:
    ranked = sorted(days, key=lambda d: (-d.total, d.date))[:top_n]
    return [
        {
            "date": d.date.isoformat(),
            "total_amount": _number(d.total, MONEY),
            "transaction_count": d.transactions,
            "day_of_week": d.date.strftime("%A"),
            "is_weekend": d.weekend,
        }
        for d in ranked
    ]


# ------------------------------------------------------------------------ written forms


def _fixed(value: Fraction | _Root | None, places: int) -> str:
    """CSV text of ``value`` rounded once, half away from zero; '' for a missing value."""
    if value is None:
        return ""
    scale = 10**places
    if isinstance(value, _Root):
        # round(sqrt(W)) = max k with (k - 1/2)^2 <= W = (isqrt(floor(4W)) + 1) // 2
        units = (isqrt(int(4 * value.square * scale**2)) + 1) // 2
        negative = False
    else:
        units = int(abs(value) * scale + Fraction(1, 2))
        negative = value < 0 and units > 0  # no "-0.00"
    return f"{'-' if negative else ''}{units // scale}.{units % scale:0{places}d}"


def _number(value: Fraction | _Root | None, places: int) -> float | None:
    """JSON number of ``value`` (the float of its rounded decimal); None when missing."""
    return None if value is None else float(_fixed(value, places))


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()
