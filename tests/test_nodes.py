"""Each analysis node on small hand-made daily sales, figures worked out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from engine.dataflow import analyse
from engine.rules.alerts import AlertThresholds

D = dt.date


def _days(*rows):
    return [analyse.SalesDay(*row) for row in rows]


# Mon 2024-01-01 .. Sun 2024-01-07, then Mon 2024-01-08 (next ISO week) and a gap.
WEEK = _days(
    (D(2024, 1, 1), 1000, 2, 1),
    (D(2024, 1, 2), 2000, 4, 2),
    (D(2024, 1, 6), 3000, 3, 3),   # Saturday
    (D(2024, 1, 7), 3000, 1, 1),   # Sunday, ties Saturday's total
    (D(2024, 1, 8), 500, 1, 1),
    (D(2024, 1, 15), 250, 1, 1),
)


def test_sales_days_from_the_reduced_table():
    table = pd.DataFrame({"date": [D(2024, 1, 1)], "total_cents": [5], "transaction_count": [2], "unique_products": [1]})
    (day,) = analyse.sales_days(table)
    assert day.mean_cents == pytest.approx(2.5) and day.day_of_week == "Monday" and not day.is_weekend


def test_daily_summary():
    summary = analyse.daily_sales_summary(WEEK[:2])
    assert summary.to_dict("list") == {
        "date": [D(2024, 1, 1), D(2024, 1, 2)],
        "total_amount": [Decimal("10.00"), Decimal("20.00")],
        "avg_amount": [Decimal("5.00"), Decimal("5.00")],
        "transaction_count": [2, 4],
        "unique_products": [1, 2],
    }


def test_enriched_windows_are_calendar_days():
    enriched = analyse.enriched_daily_summary(analyse.daily_sales_summary(WEEK), WEEK)
    # 2024-01-08 window is 01-02..01-08: totals 2000, 3000, 3000, 500 -> mean 2125 cents
    assert enriched["total_amount_ma7"].tolist()[4] == Decimal("21.25")
    # 2024-01-07 window is 01-01..01-07: daily means 500, 500, 1000, 3000 cents -> 1250
    assert enriched["avg_amount_ma7"].tolist()[3] == Decimal("12.50")
    assert enriched["total_amount_change"].tolist()[:3] == [None, Decimal("100.0000"), Decimal("50.0000")]
    assert enriched["day_of_week"].tolist()[2:4] == ["Saturday", "Sunday"]
    assert enriched["is_weekend"].tolist() == [False, False, True, True, False, False]


def test_weekly_aggregation_uses_iso_weeks():
    weekly = analyse.weekly_aggregation(WEEK)
    assert weekly["week"].tolist() == ["2024-W01", "2024-W02", "2024-W03"]
    first = weekly.iloc[0].to_dict()
    assert first["week_start"] == D(2024, 1, 1)
    assert first["weekly_total"] == Decimal("90.00")
    assert first["daily_avg"] == Decimal("22.50")
    assert first["daily_std"] == Decimal("9.57")      # sample std of 1000, 2000, 3000, 3000 cents
    assert first["cv"] == Decimal("0.4255")           # 957.427.../2250 = 0.42552
    assert (first["weekly_transactions"], first["weekend_days"], first["days_with_sales"]) == (10, 2, 4)
    assert first["avg_unique_products"] == Decimal("1.7500")
    assert weekly.iloc[1]["daily_std"] is None and weekly.iloc[1]["cv"] is None


def test_trend_analysis():
    trend = analyse.trend_analysis(WEEK)
    # first 7 rows = all 6 rows; last 7 = all 6 rows: no growth
    assert trend["period_growth_rate"] == Decimal("0.0000")
    assert (trend["max_sales_amount"], trend["max_sales_date"]) == (Decimal("30.00"), "2024-01-06")
    assert (trend["min_sales_amount"], trend["min_sales_date"]) == (Decimal("2.50"), "2024-01-15")
    assert trend["weekday_avg_sales"] == Decimal("9.38")   # (1000+2000+500+250)/4 = 937.5 cents
    assert trend["weekend_avg_sales"] == Decimal("30.00")
    assert trend["weekend_premium"] == Decimal("220.0000")  # 3000/937.5 - 1
    assert trend["days_analyzed"] == 6


def test_trend_analysis_without_days_is_all_null():
    trend = analyse.trend_analysis([])
    assert trend["days_analyzed"] == 0
    assert all(value is None for key, value in trend.items() if key != "days_analyzed")


def test_growth_compares_first_and_last_seven_rows():
    days = _days(*[(D(2024, 1, 1) + dt.timedelta(days=i), 100 * (i + 1), 1, 1) for i in range(14)])
    # first 7 mean 400 cents, last 7 mean 1100 cents -> +175 %
    assert analyse.trend_analysis(days)["period_growth_rate"] == Decimal("175.0000")


def test_top_days_ties_by_earlier_date():
    top = analyse.top_performing_days(WEEK, 2)
    assert [(d["date"], d["total_amount"], d["is_weekend"]) for d in top] == [
        ("2024-01-06", Decimal("30.00"), True), ("2024-01-07", Decimal("30.00"), True)]


def test_quality_metrics_and_alerts():
    metrics = analyse.data_quality_metrics(
        raw_record_count=200,
        missing_cells_by_column={"date": 100, "product_id": 1, "amount": 0, "customer_id": 5},
        rejected_by_reason={"missing_date": 100, "invalid_date": 0, "missing_product_id": 1, "missing_amount": 0,
                            "invalid_amount": 0, "non_positive_amount": 0},
        distinct_raw_rows=190,
        sales_days=WEEK,
        alert_thresholds=AlertThresholds(max_data_loss_rate=10, max_null_count=100),
    )
    assert metrics["cleaned_record_count"] == 99
    assert metrics["data_loss_rate"] == Decimal("50.5000")
    assert (metrics["null_count"], metrics["duplicate_count"]) == (106, 10)
    assert metrics["date_range"] == {"min": "2024-01-01", "max": "2024-01-15"}
    assert [a["name"] for a in metrics["alerts"]] == ["high_data_loss_rate", "high_null_count"]
