"""Data-quality alerts: thresholds over the quality metrics and the daily sales (SPEC §4).

An alert is a plain dict (`name`, `severity`, `value`, `threshold`, `message`, and for
the day-level checks `details`) so it can be published in `data_quality_metrics.json`
as it is. SPEC §4's two checks are on by default; the others are off until a threshold
is configured (docs/semantics.md). `high_null_count` counts the missing cells of the
required columns only: an empty `customer_id` is allowed, so it is not a data-quality
problem.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from engine.rules import exact
from engine.rules.validation import REQUIRED_COLUMNS

#: Dates named in an alert's message (all of them are in its details).
_DATES_IN_MESSAGE = 5


@dataclass(frozen=True)
class AlertThresholds:
    """The configured limits; a value above a limit raises its alert. None: no check."""

    max_data_loss_rate: float | None = 10.0
    #: missing cells in the required columns (date, product_id, amount)
    max_null_count: int | None = 100
    #: percent of raw records that exactly repeat an earlier one
    max_duplicate_rate: float | None = None
    #: days without any kept sale between the first and the last sales day
    max_missing_days: int | None = None
    #: percent by which a day's total may differ from its 7-day moving mean (total_amount_ma7)
    max_daily_deviation: float | None = None


@dataclass(frozen=True)
class DayTotal:
    """A sales day's total and its 7-calendar-day moving mean, exact (in cents)."""

    date: dt.date
    total_cents: int
    moving_mean_cents: Fraction


def evaluate_alerts(metrics: dict, thresholds: AlertThresholds, days: list[DayTotal] = ()) -> list[dict]:
    """The alerts `metrics` and the daily totals raise, in a fixed order."""
    alerts = []
    checks = (
        ("high_data_loss_rate", metrics["data_loss_rate"], thresholds.max_data_loss_rate, "% of raw rows rejected"),
        ("high_null_count", required_missing_cells(metrics), thresholds.max_null_count,
         f" missing cells in the required columns ({_by_column(metrics, REQUIRED_COLUMNS)})"),
        ("high_duplicate_rate", _duplicate_rate(metrics), thresholds.max_duplicate_rate,
         "% of raw rows repeat an earlier row"),
    )
    for name, value, threshold, unit in checks:
        if threshold is not None and Decimal(str(value)) > Decimal(str(threshold)):
            alerts.append(_alert(name, value, threshold, f"{name}: {value}{unit} (threshold {threshold})"))
    if thresholds.max_missing_days is not None:
        missing = _missing_days(days)
        if len(missing) > thresholds.max_missing_days:
            alerts.append(_alert(
                "missing_sales_days", len(missing), thresholds.max_missing_days,
                f"missing_sales_days: {len(missing)} day(s) without sales between {days[0].date} and "
                f"{days[-1].date} ({_dates(missing)}) (threshold {thresholds.max_missing_days})",
                details=[d.isoformat() for d in missing]))
    if thresholds.max_daily_deviation is not None:
        outliers = _outlier_days(days, Fraction(str(thresholds.max_daily_deviation)))
        if outliers:
            worst = max(outliers, key=lambda o: (o[1], -o[0].date.toordinal()))
            alerts.append(_alert(
                "daily_total_outlier", len(outliers), thresholds.max_daily_deviation,
                f"daily_total_outlier: {len(outliers)} day(s) whose total is more than "
                f"{thresholds.max_daily_deviation}% away from its 7-day mean; the furthest "
                f"{worst[0].date}: {exact.money(worst[0].total_cents)} against a mean of "
                f"{exact.money(worst[0].moving_mean_cents)} ({exact.ratio(worst[1])}%)",
                details=[{"date": day.date.isoformat(), "total_amount": exact.money(day.total_cents),
                          "total_amount_ma7": exact.money(day.moving_mean_cents),
                          "deviation_percent": exact.ratio(deviation)} for day, deviation in outliers]))
    return alerts


def required_missing_cells(metrics: dict) -> int:
    """Missing cells in the columns every sale must have (date, product_id, amount): the
    figure `high_null_count` watches. The optional customer_id may be empty, so its empty
    cells stay in `null_count` and `null_count_by_column` but raise no alert."""
    return sum(metrics["null_count_by_column"][column] for column in REQUIRED_COLUMNS)


def _by_column(metrics: dict, columns: tuple[str, ...]) -> str:
    return ", ".join(f"{column} {metrics['null_count_by_column'][column]}" for column in columns)


def _alert(name: str, value, threshold, message: str, details: list | None = None) -> dict:
    alert = {"name": name, "severity": "warning", "value": value, "threshold": threshold, "message": message}
    if details is not None:
        alert["details"] = details
    return alert


def _duplicate_rate(metrics: dict) -> Decimal:
    raw = metrics["raw_record_count"]
    rate = exact.quotient(Fraction(metrics["duplicate_count"] * 100), Fraction(raw)) if raw else Fraction(0)
    return exact.ratio(rate)


def _missing_days(days: list[DayTotal]) -> list[dt.date]:
    present = {d.date for d in days}
    if not days:
        return []
    span = (days[-1].date - days[0].date).days
    return [day for day in (days[0].date + dt.timedelta(n) for n in range(span + 1)) if day not in present]


def _outlier_days(days: list[DayTotal], limit: Fraction) -> list[tuple[DayTotal, Fraction]]:
    outliers = []
    for day in days:
        if day.moving_mean_cents == 0:
            continue
        deviation = abs(day.total_cents - day.moving_mean_cents) * 100 / abs(day.moving_mean_cents)
        if deviation > limit:
            outliers.append((day, deviation))
    return outliers


def _dates(dates: list[dt.date]) -> str:
    shown = ", ".join(d.isoformat() for d in dates[:_DATES_IN_MESSAGE])
    return shown + (f" and {len(dates) - _DATES_IN_MESSAGE} more" if len(dates) > _DATES_IN_MESSAGE else "")
