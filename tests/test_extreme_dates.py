"""The first and last days of the calendar (0001-01-01 and 9999-12-31 are valid by
SPEC): runs complete in every mode, give the same bytes, and match the oracle.

0001-01-01 is a Monday in the proleptic Gregorian calendar, so its ISO week is 0001-W01
starting on that very day; 9999-12-31 is a Friday, in 9999-W52 starting 9999-12-27:
every ISO week of a valid date starts on a valid date."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import published_bytes, read_outputs, run_cli, run_engine, write_csv
from oracle import expected_outputs

FIRST_WEEK = [(f"0001-01-0{d}", f"P{d % 3}", f"{d}.25", "C1") for d in range(1, 8)]
LAST_DAYS = [(f"9999-12-{d}", "P1", f"1{d}.50", "") for d in range(24, 32)]
ROWS = FIRST_WEEK + [("0001-01-03", "P9", "0.01", "")] + [("0001-01-09", "P1", "3", "")] + LAST_DAYS


@pytest.fixture(scope="module")
def extreme_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("extreme") / "extreme.csv", ROWS)


@pytest.fixture(scope="module")
def extreme_pandas(extreme_csv, tmp_path_factory):
    output = tmp_path_factory.mktemp("extreme_pandas")
    run_engine(extreme_csv, output, mode="pandas")
    return output


def test_the_calendars_ends_match_the_oracle(extreme_csv, extreme_pandas):
    got = read_outputs(extreme_pandas)
    assert got == expected_outputs([extreme_csv])
    weeks = {row["week"]: row["week_start"] for row in got["weekly_aggregation"]}
    assert weeks["0001-W01"] == "0001-01-01"
    assert weeks["0001-W02"] == "0001-01-08"
    assert weeks["9999-W51"] == "9999-12-20"
    assert weeks["9999-W52"] == "9999-12-27"
    first = got["enriched_daily_summary"][0]
    assert (first["date"], first["day_of_week"], first["total_amount_ma7"]) == ("0001-01-01", "Monday", "1.25")
    assert got["enriched_daily_summary"][-1]["day_of_week"] == "Friday"
    assert got["data_quality_metrics"]["date_range"] == {"min": "0001-01-01", "max": "9999-12-31"}


def test_the_iso_calendar_at_the_ends():
    """What the published week and week_start rest on (Python's proleptic Gregorian calendar)."""
    assert dt.date(1, 1, 1).isocalendar()[:2] == (1, 1)
    assert dt.date.fromisocalendar(1, 1, 1) == dt.date(1, 1, 1)
    assert dt.date(9999, 12, 31).isocalendar()[:2] == (9999, 52)
    assert dt.date.fromisocalendar(9999, 52, 1) == dt.date(9999, 12, 27)


@pytest.mark.parametrize(("mode", "settings"), [
    ("dask", {"partition_size": "64B"}),
    ("dask", {"partition_size": "1MiB"}),
    ("distributed", {"partition_size": "100B", "cluster.workers": 2}),
], ids=["dask-64B", "dask-1MiB", "distributed-100B"])
def test_every_mode_gives_the_same_bytes(extreme_csv, extreme_pandas, tmp_path, mode, settings):
    run_engine(extreme_csv, tmp_path, mode=mode, **settings)
    assert published_bytes(tmp_path) == published_bytes(extreme_pandas)


def test_the_first_week_of_year_one_alone_completes_from_the_cli(tmp_path):
    """The issue's input: rows dated 0001-01-01 .. 0001-01-07 only."""
    source = write_csv(tmp_path / "year1.csv", [(f"0001-01-0{d}", "P1", "10.00", "C1") for d in range(1, 8)])
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    assert read_outputs(tmp_path / "out") == expected_outputs([source])
    trend = json.loads((tmp_path / "out" / "trend_analysis.json").read_text())
    assert trend["days_analyzed"] == 7


def test_alerts_at_the_calendars_ends(tmp_path):
    """The day-level alerts walk calendar days and moving windows: fine at both ends."""
    source = write_csv(tmp_path / "ends.csv", FIRST_WEEK[:2] + [("0001-01-05", "P1", "1000", "")] + LAST_DAYS[-3:])
    run_engine(source, tmp_path / "out", mode="pandas", **{"alerts.max_daily_deviation": 50})
    metrics = json.loads((tmp_path / "out" / "data_quality_metrics.json").read_text())
    assert [a["name"] for a in metrics["alerts"]] == ["daily_total_outlier"]
    assert metrics["alerts"][0]["details"][0]["date"] == "0001-01-05"
