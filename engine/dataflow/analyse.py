"""Analyse: the published daily, weekly, trend, top-day and quality figures.

These nodes work on `daily_sales` (one row per sales day, exact integer cents), a few
thousand rows at most, so they favour exactness over vectorisation: every figure is
computed as an exact fraction and rounded once, here, as it is published (engine.rules.exact).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby

import pandas as pd

from engine.dataflow.derivation import derives
from engine.errors import InputDataError
from engine.outputs import forms
from engine.rules import exact
from engine.rules.alerts import AlertThresholds, DayTotal, evaluate_alerts
from engine.rules.validation import RAW_COLUMNS

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MOVING_WINDOW_DAYS = 7
TREND_WINDOW_ROWS = 7

#: Column sources (engine.dataflow.derivation) the figures below share.
_DATE = "sales_days.date IDENTITY"
_DAY_NAME = "sales_days.date TRANSFORMATION"
_TOTALS = "sales_days.total_cents AGGREGATION"
_MEANS = [_TOTALS, "sales_days.transactions AGGREGATION"]
_WINDOW = "sales_days.date WINDOW"


@dataclass(frozen=True)
class SalesDay:
    """One day with sales, in exact figures."""

    date: dt.date
    total_cents: int
    transactions: int
    unique_products: int

    @property
    def mean_cents(self) -> Fraction:
        return Fraction(self.total_cents, self.transactions)

    @property
    def day_of_week(self) -> str:
        return DAY_NAMES[self.date.weekday()]

    @property
    def is_weekend(self) -> bool:
        return self.date.weekday() >= 5


@derives(date="daily_sales.date IDENTITY", total_cents="daily_sales.total_cents IDENTITY",
         transactions="daily_sales.transaction_count IDENTITY", unique_products="daily_sales.unique_products IDENTITY")
def sales_days(daily_sales: pd.DataFrame) -> list[SalesDay]:
    """The daily sales as exact records, ascending by date."""
    return [
        SalesDay(date, int(total), int(count), int(products))
        for date, total, count, products in zip(
            daily_sales["date"], daily_sales["total_cents"], daily_sales["transaction_count"], daily_sales["unique_products"]
        )
    ]


def _publishable_cents_limit() -> int:
    """The first amount of cents the published money type (Parquet decimal) cannot hold."""
    money_type = forms.ARROW_TYPES["money"]
    return 10 ** money_type.precision


def _check_publishable(cents: int, what: str) -> None:
    """Fail the run (exit 3) when a money figure is too large for its published type,
    rather than write a wrapped or truncated number (docs/semantics.md)."""
    limit = _publishable_cents_limit()
    if abs(cents) >= limit:
        money_type = forms.ARROW_TYPES["money"]
        raise InputDataError(
            f"{what} is {exact.money(cents)}, more than the published money type "
            f"decimal({money_type.precision},{money_type.scale}) holds (at most "
            f"{money_type.precision - money_type.scale} digits before the point)")


@derives(
    date=_DATE, total_amount="sales_days.total_cents TRANSFORMATION",
    avg_amount=["sales_days.total_cents TRANSFORMATION", "sales_days.transactions TRANSFORMATION"],
    transaction_count="sales_days.transactions IDENTITY", unique_products="sales_days.unique_products IDENTITY",
    dataset="sales_days.date SORT",
)
def daily_sales_summary(sales_days: list[SalesDay]) -> pd.DataFrame:
    """Per sales day: total and mean sale amount, number of sales, distinct products."""
    for day in sales_days:  # every other daily money figure is at most the largest daily total
        _check_publishable(day.total_cents, f"the total of {day.date.isoformat()}")
    return pd.DataFrame(
        {
            "date": [d.date for d in sales_days],
            "total_amount": [exact.money(d.total_cents) for d in sales_days],
            "avg_amount": [exact.money(d.mean_cents) for d in sales_days],
            "transaction_count": [d.transactions for d in sales_days],
            "unique_products": [d.unique_products for d in sales_days],
        },
        columns=["date", "total_amount", "avg_amount", "transaction_count", "unique_products"],
    )


def _moving_windows(sales_days: list[SalesDay]) -> list[list[SalesDay]]:
    """For each sales day, the sales days in the 7 calendar days ending on it (itself included)."""
    windows, start = [], 0
    for index, day in enumerate(sales_days):
        # day numbers, not dates: 0001-01-01 minus 7 days is before the first date Python has
        while sales_days[start].date.toordinal() <= day.date.toordinal() - MOVING_WINDOW_DAYS:
            start += 1
        windows.append(sales_days[start : index + 1])
    return windows


@derives(
    **{column: f"daily_sales_summary.{column} IDENTITY"
       for column in ("date", "total_amount", "avg_amount", "transaction_count", "unique_products")},
    total_amount_ma7=[_TOTALS, _WINDOW], avg_amount_ma7=[*_MEANS, _WINDOW],
    total_amount_change=[_TOTALS, _WINDOW], avg_amount_change=[*_MEANS, _WINDOW],
    day_of_week=_DAY_NAME, is_weekend=_DAY_NAME,
)
def enriched_daily_summary(daily_sales_summary: pd.DataFrame, sales_days: list[SalesDay]) -> pd.DataFrame:
    """The daily summary with 7-calendar-day moving means, day-over-day percent changes
    (against the previous sales day) and the day of the week."""
    total_ma7, avg_ma7, total_change, avg_change = [], [], [], []
    for index, (day, window) in enumerate(zip(sales_days, _moving_windows(sales_days))):
        total_ma7.append(exact.money(exact.mean([d.total_cents for d in window])))
        avg_ma7.append(exact.money(exact.mean([d.mean_cents for d in window])))
        previous = sales_days[index - 1] if index else None
        total_change.append(exact.ratio(exact.percent_change(day.total_cents, previous and previous.total_cents)))
        avg_change.append(exact.ratio(exact.percent_change(day.mean_cents, previous and previous.mean_cents)))
    enriched = daily_sales_summary.copy()
    enriched["total_amount_ma7"] = total_ma7
    enriched["avg_amount_ma7"] = avg_ma7
    enriched["total_amount_change"] = total_change
    enriched["avg_amount_change"] = avg_change
    enriched["day_of_week"] = [d.day_of_week for d in sales_days]
    enriched["is_weekend"] = [d.is_weekend for d in sales_days]
    return enriched


@derives(
    week=_DAY_NAME, week_start=_DAY_NAME, weekly_total=_TOTALS, daily_avg=_TOTALS, daily_std=_TOTALS, cv=_TOTALS,
    weekly_transactions="sales_days.transactions AGGREGATION",
    avg_unique_products="sales_days.unique_products AGGREGATION",
    weekend_days="sales_days.date AGGREGATION", days_with_sales="sales_days.date AGGREGATION",
    dataset=["sales_days.date GROUP_BY", "sales_days.date SORT"],
)
def weekly_aggregation(sales_days: list[SalesDay]) -> pd.DataFrame:
    """Per ISO week with sales: totals, the spread of daily totals, and activity."""
    rows = []
    for (year, week), days in groupby(sales_days, key=lambda d: d.date.isocalendar()[:2]):
        days = list(days)
        totals = [d.total_cents for d in days]
        daily_mean = exact.mean(totals)
        daily_std = exact.sample_std(totals)
        _check_publishable(sum(totals), f"the total of week {year:04d}-W{week:02d}")
        rows.append(
            {
                "week": f"{year:04d}-W{week:02d}",
                "week_start": dt.date.fromisocalendar(year, week, 1),
                "weekly_total": exact.money(sum(totals)),
                "daily_avg": exact.money(daily_mean),
                "daily_std": exact.money(daily_std),
                "cv": exact.ratio(exact.quotient(daily_std, daily_mean)),
                "weekly_transactions": sum(d.transactions for d in days),
                "avg_unique_products": exact.ratio(exact.mean([d.unique_products for d in days])),
                "weekend_days": sum(d.is_weekend for d in days),
                "days_with_sales": len(days),
            }
        )
    columns = ["week", "week_start", "weekly_total", "daily_avg", "daily_std", "cv", "weekly_transactions",
               "avg_unique_products", "weekend_days", "days_with_sales"]
    return pd.DataFrame(rows, columns=columns)


@derives(
    period_growth_rate=[_TOTALS, _WINDOW],
    max_sales_amount=_TOTALS, max_sales_date=[_DATE, "sales_days.total_cents SORT"],
    min_sales_amount=_TOTALS, min_sales_date=[_DATE, "sales_days.total_cents SORT"],
    weekday_avg_sales=[_TOTALS, "sales_days.date FILTER"], weekend_avg_sales=[_TOTALS, "sales_days.date FILTER"],
    weekend_premium=[_TOTALS, "sales_days.date GROUP_BY"], volatility=_TOTALS,
    days_analyzed="sales_days.date AGGREGATION",
)
def trend_analysis(sales_days: list[SalesDay]) -> dict:
    """Growth from the first week of the period to the last, extremes, weekday vs weekend
    and volatility of daily totals."""
    totals = [d.total_cents for d in sales_days]
    growth = None
    if len(sales_days) >= 2:
        growth = exact.percent_change(exact.mean(totals[-TREND_WINDOW_ROWS:]), exact.mean(totals[:TREND_WINDOW_ROWS]))
    best = min(sales_days, key=lambda d: (-d.total_cents, d.date), default=None)
    worst = min(sales_days, key=lambda d: (d.total_cents, d.date), default=None)
    weekday = exact.mean([d.total_cents for d in sales_days if not d.is_weekend])
    weekend = exact.mean([d.total_cents for d in sales_days if d.is_weekend])
    premium = exact.quotient(weekend, weekday)
    return {
        "period_growth_rate": exact.ratio(growth),
        "max_sales_amount": exact.money(best and best.total_cents),
        "max_sales_date": best and best.date.isoformat(),
        "min_sales_amount": exact.money(worst and worst.total_cents),
        "min_sales_date": worst and worst.date.isoformat(),
        "weekday_avg_sales": exact.money(weekday),
        "weekend_avg_sales": exact.money(weekend),
        "weekend_premium": exact.ratio(None if premium is None else (premium - 1) * 100),
        "volatility": exact.money(exact.sample_std(totals)),
        "days_analyzed": len(sales_days),
    }


@derives(
    date=_DATE, total_amount="sales_days.total_cents TRANSFORMATION",
    transaction_count="sales_days.transactions IDENTITY", day_of_week=_DAY_NAME, is_weekend=_DAY_NAME,
    dataset=["sales_days.total_cents SORT", "sales_days.total_cents FILTER"],
)
def top_performing_days(sales_days: list[SalesDay], top_days: int) -> list[dict]:
    """The `top_days` best sales days by total amount (ties: earlier date first)."""
    ranked = sorted(sales_days, key=lambda d: (-d.total_cents, d.date))[:top_days]
    return [
        {
            "date": d.date.isoformat(),
            "total_amount": exact.money(d.total_cents),
            "transaction_count": d.transactions,
            "day_of_week": d.day_of_week,
            "is_weekend": d.is_weekend,
        }
        for d in ranked
    ]


@derives(
    raw_record_count="raw_record_count IDENTITY",
    cleaned_record_count=["raw_record_count TRANSFORMATION", "rejected_by_reason TRANSFORMATION"],
    data_loss_rate=["raw_record_count TRANSFORMATION", "rejected_by_reason TRANSFORMATION"],
    null_count="missing_cells_by_column AGGREGATION",
    duplicate_count=["raw_record_count TRANSFORMATION", "distinct_raw_rows TRANSFORMATION"],
    rejected_by_reason="rejected_by_reason IDENTITY",
    null_count_by_column="missing_cells_by_column IDENTITY",
    date_range="sales_days.date AGGREGATION",
    alerts=[f"{node} TRANSFORMATION" for node in ("raw_record_count", "missing_cells_by_column", "rejected_by_reason",
                                                   "distinct_raw_rows", "sales_days")],
)
def data_quality_metrics(
    raw_record_count: int,
    missing_cells_by_column: dict,
    rejected_by_reason: dict,
    distinct_raw_rows: int,
    sales_days: list[SalesDay],
    alert_thresholds: AlertThresholds,
) -> dict:
    """How much of the input was usable, what was wrong with the rest, and the alerts
    the configured thresholds raise."""
    rejected = sum(rejected_by_reason.values())
    loss_rate = exact.quotient(Fraction(rejected * 100), Fraction(raw_record_count))
    metrics = {
        "raw_record_count": raw_record_count,
        "cleaned_record_count": raw_record_count - rejected,
        "data_loss_rate": exact.ratio(loss_rate if loss_rate is not None else Fraction(0)),
        "null_count": sum(missing_cells_by_column.values()),
        "duplicate_count": raw_record_count - distinct_raw_rows,
        "rejected_by_reason": dict(rejected_by_reason),
        "null_count_by_column": {c: missing_cells_by_column[c] for c in RAW_COLUMNS},
        "date_range": {
            "min": sales_days[0].date.isoformat() if sales_days else None,
            "max": sales_days[-1].date.isoformat() if sales_days else None,
        },
    }
    day_totals = [DayTotal(day.date, day.total_cents, exact.mean([d.total_cents for d in window]))
                  for day, window in zip(sales_days, _moving_windows(sales_days))]
    metrics["alerts"] = evaluate_alerts(metrics, alert_thresholds, day_totals)
    return metrics
