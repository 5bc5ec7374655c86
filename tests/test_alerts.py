"""Data-quality alerts beyond SPEC §4's two: duplicate rate, days without sales inside the
range, and a daily total far from its 7-day mean. Each is configured, logged as a WARNING
with its numbers, listed in data_quality_metrics.json, and fails the run (exit 4, after
the outputs are written) with fail_on_alert."""

from __future__ import annotations

import json

from conftest import run_cli, run_engine, write_csv

ROWS = [
    ("2024-05-01", "P1", "100.00", "C1"),
    ("2024-05-01", "P1", "100.00", "C1"),  # a duplicate
    ("2024-05-02", "P2", "110.00", "C2"),
    ("2024-05-03", "P3", "90.00", "C3"),
    ("2024-05-04", "P1", "100.00", "C4"),
    ("2024-05-07", "P2", "900.00", "C5"),  # after two days without sales, far above its mean
    ("2024-05-08", "P3", "95.00", "C6"),
]


def _alerts(result):
    return {alert["name"]: alert for alert in result.results["data_quality_metrics"]["alerts"]}


def test_new_checks_are_off_by_default(tmp_path):
    result = run_engine(write_csv(tmp_path / "s.csv", ROWS), tmp_path / "out")
    assert _alerts(result) == {}


def test_each_check_reports_its_numbers(tmp_path):
    result = run_engine(write_csv(tmp_path / "s.csv", ROWS), tmp_path / "out", **{
        "alerts.max_duplicate_rate": 10, "alerts.max_missing_days": 0, "alerts.max_daily_deviation": 100})
    assert set(_alerts(result)) == {"high_duplicate_rate", "missing_sales_days", "daily_total_outlier"}
    published = json.loads((tmp_path / "out" / "data_quality_metrics.json").read_text())
    alerts = {alert["name"]: alert for alert in published["alerts"]}
    # 1 duplicate of 7 rows: 14.2857%
    assert alerts["high_duplicate_rate"]["value"] == 14.2857
    assert alerts["missing_sales_days"]["value"] == 2
    assert alerts["missing_sales_days"]["details"] == ["2024-05-05", "2024-05-06"]
    # 2024-05-07: window 05-01..05-07 totals 200, 110, 90, 100, 900 -> mean 280; 900 is 221.4286% away
    outlier = alerts["daily_total_outlier"]
    assert outlier["value"] == 1
    assert outlier["details"] == [{"date": "2024-05-07", "total_amount": 900.0, "total_amount_ma7": 280.0,
                                   "deviation_percent": 221.4286}]
    assert [a["name"] for a in published["alerts"]] == ["high_duplicate_rate", "missing_sales_days",
                                                        "daily_total_outlier"]


def test_thresholds_not_crossed_raise_nothing(tmp_path):
    result = run_engine(write_csv(tmp_path / "s.csv", ROWS), tmp_path / "out", **{
        "alerts.max_duplicate_rate": 15, "alerts.max_missing_days": 2, "alerts.max_daily_deviation": 222})
    assert _alerts(result) == {}


def test_an_alert_is_a_warning_and_fails_the_run_when_configured(tmp_path):
    source = write_csv(tmp_path / "s.csv", ROWS)
    config = tmp_path / "c.yaml"
    config.write_text("alerts:\n  max_missing_days: 0\n  fail_on_alert: true\n")
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--config", str(config))
    assert done.returncode == 4
    assert "WARNING" in done.stderr and "missing_sales_days: 2 day(s) without sales between 2024-05-01 and " \
        "2024-05-08 (2024-05-05, 2024-05-06)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: 1 data-quality alert(s) and fail_on_alert is set")
    assert (tmp_path / "out" / "daily_sales_summary.csv").exists()
