"""The run's HTML report (`<output>/report.html`): the sales and the run, at a glance.

One self-contained file (inline CSS and SVG, no script, nothing fetched), written with
the other outputs of the run: daily sales with their 7-day mean, weekly totals, weekday
against weekend, the top days, rejected rows by reason, the run's metrics (where the
time went, CPU, memory) and the recent run history with its success rate (interrupted
runs shown, but left out of the rate).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import pandas as pd

from engine.observability.svg_charts import PALETTE, bar_chart, compact_number, hbar_chart, line_chart

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: steps shown in the "where the time went" chart, slowest first
SLOWEST_STEPS = 12
#: runs shown in the history chart, most recent last
HISTORY_RUNS = 30
#: bar colour of each run status in the history chart
STATUS_COLOURS = {"success": PALETTE["good"], "failed": PALETTE["bad"], "interrupted": "#9aa5b1"}

_STYLE = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0; background: #f4f6f8;
       color: #1f2933; }
header { background: #1f3b5c; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c8d6e5; font-size: 13px; }
main { max-width: 940px; margin: 0 auto; padding: 16px 24px 40px; }
section { background: #fff; border-radius: 6px; padding: 14px 20px 10px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 16px; margin: 0 0 4px; }
p.note { margin: 0 0 8px; color: #52606d; font-size: 13px; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 16px 0; }
.tile { background: #fff; border-radius: 6px; padding: 10px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.tile b { display: block; font-size: 20px; }
.tile span { font-size: 12px; color: #52606d; }
.tile.alert b { color: #c0392b; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg text { font-size: 11px; fill: #3e4c59; }
svg text.value { font-size: 11px; fill: #1f2933; }
svg text.label { font-size: 12px; }
svg text.legend { font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; }
td, th { padding: 3px 12px 3px 0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


def render_report(results: Mapping[str, Any], report: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                  success_rate: float | None) -> str:
    """The report's HTML. `history` is the run history with this run last."""
    quality = results["data_quality_metrics"]
    trend = results["trend_analysis"]
    sections = [
        _daily_section(results["enriched_daily_summary"]),
        _weekly_section(results["weekly_aggregation"]),
        _weekday_section(results["enriched_daily_summary"], trend),
        _top_days_section(results["top_performing_days"]),
        _rejected_section(quality),
        _run_section(report),
        _history_section(history, success_rate),
    ]
    run = report["metrics"]["run"]
    started = report["started_at"][:19].replace("T", " ")
    title = f"Sales report {quality['date_range']['min'] or ''} to {quality['date_range']['max'] or ''}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{escape(title)}</h1><p>run {escape(report['run_id'])} · {escape(report['mode'])} mode · "
        f"started {escape(started)} UTC · engine {escape(report['engine_version'])}</p></header><main>",
        _tiles(quality, trend, report, run, success_rate),
        *sections,
        "</main></body></html>",
    ])


def _money(value: Any) -> str:
    return "–" if value is None else f"{float(value):,.2f}"


def _floats(values: Sequence[Any]) -> list[float | None]:
    return [None if v is None or (not hasattr(v, "as_tuple") and pd.isna(v)) else float(v) for v in values]


def _section(title: str, note: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2><p class=\"note\">{note}</p>{body}</section>"


def _tiles(quality: Mapping, trend: Mapping, report: Mapping, run: Mapping, success_rate: float | None) -> str:
    tiles = [
        ("rows read", f"{quality['raw_record_count']:,}", False),
        ("rows kept", f"{quality['cleaned_record_count']:,}", False),
        ("rejected", f"{float(quality['data_loss_rate']):.2f} %", bool(quality["alerts"])),
        ("days with sales", f"{trend['days_analyzed']:,}", False),
        ("run time", f"{report['duration_s']:.2f} s", False),
        ("rows per second", compact_number(run["rows_per_second"] or 0), False),
        ("peak memory (driver + workers)",
         f"{(run['peak_memory_bytes']['driver'] + run['peak_memory_bytes']['workers_total']) / 2**20:,.0f} MiB", False),
        ("run success rate", "–" if success_rate is None else f"{success_rate * 100:.0f} %",
         success_rate is not None and success_rate < 1),
    ]
    cells = "".join(f'<div class="tile{" alert" if alert else ""}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
                    for label, value, alert in tiles)
    return f'<div class="tiles">{cells}</div>'


def _daily_section(enriched: pd.DataFrame) -> str:
    if enriched.empty:
        return _section("Daily sales", "No day with sales.", "")
    dates = [d.isoformat() for d in enriched["date"]]
    chart = line_chart(
        "Daily sales total and its 7-day mean", dates,
        [("daily total", _floats(enriched["total_amount"]), PALETTE["muted"], 1.2),
         ("7-day mean", _floats(enriched["total_amount_ma7"]), PALETTE["primary"], 2.4)],
    )
    return _section("Daily sales", f"Total sale amount per day with sales ({len(dates):,} days), "
                    "and its mean over the 7 calendar days ending on each day.", chart)


def _weekly_section(weekly: pd.DataFrame) -> str:
    if weekly.empty:
        return _section("Weekly totals", "No week with sales.", "")
    chart = bar_chart("Sales total per ISO week", list(weekly["week"]), _floats(weekly["weekly_total"]))
    return _section("Weekly totals", f"Sum of daily totals per ISO week ({len(weekly):,} weeks).", chart)


def _weekday_section(enriched: pd.DataFrame, trend: Mapping) -> str:
    if enriched.empty:
        return _section("Weekday and weekend", "No day with sales.", "")
    totals = pd.Series(_floats(enriched["total_amount"]), index=list(enriched["day_of_week"]), dtype="float64")
    means = totals.groupby(level=0).mean()
    days = [d for d in DAY_NAMES if d in means.index]
    colours = [PALETTE["weekend"] if d in ("Saturday", "Sunday") else PALETTE["weekday"] for d in days]
    chart = bar_chart("Mean daily sales by day of the week", days, [float(means[d]) for d in days], colours,
                      show_values=True, height=240)
    premium = trend.get("weekend_premium")
    note = (f"Mean daily total on weekdays {_money(trend.get('weekday_avg_sales'))}, on weekends "
            f"{_money(trend.get('weekend_avg_sales'))}"
            + (f": weekends sell {float(premium):+.1f} % against weekdays." if premium is not None else "."))
    return _section("Weekday and weekend", escape(note) + ' <span style="color:#e07b24">■</span> weekend '
                    '<span style="color:#2f6db5">■</span> weekday', chart)


def _top_days_section(top_days: Sequence[Mapping]) -> str:
    if not top_days:
        return _section("Top days", "No day with sales.", "")
    labels = [f"{d['date']} ({d['day_of_week'][:3]})" for d in top_days]
    chart = hbar_chart("Days with the highest sales", labels, [float(d["total_amount"]) for d in top_days],
                       colour=PALETTE["good"], fmt=_money, label_width=150)
    return _section("Top days", f"The {len(top_days)} days with the highest sales total.", chart)


def _rejected_section(quality: Mapping) -> str:
    rejected = {reason: count for reason, count in quality["rejected_by_reason"].items() if count}
    total = quality["raw_record_count"]
    if not rejected:
        return _section("Rejected rows", f"No row of the {total:,} read was rejected.", "")
    labels = [reason.replace("_", " ") for reason in rejected]
    chart = hbar_chart("Rejected rows by reason", labels, list(rejected.values()), colour=PALETTE["bad"],
                       fmt=lambda v: f"{v:,.0f}", label_width=170)
    alerts = "; ".join(a["message"] for a in quality["alerts"])
    note = (f"{sum(rejected.values()):,} of {total:,} rows rejected ({float(quality['data_loss_rate']):.2f} %), "
            f"{quality['duplicate_count']:,} duplicate rows." + (f" Alerts: {alerts}." if alerts else ""))
    return _section("Rejected rows", escape(note), chart)


def _run_section(report: Mapping) -> str:
    run = report["metrics"]["run"]
    steps = sorted(report["metrics"]["steps"].items(), key=lambda item: item[1]["wall_s"], reverse=True)
    slowest = steps[:SLOWEST_STEPS]
    chart = hbar_chart("Wall time of the slowest steps", [name for name, _ in slowest],
                       [step["wall_s"] for _, step in slowest], colour=PALETTE["primary"],
                       fmt=lambda v: f"{v:.3f} s", label_width=210)
    mib = 2**20
    rows = [
        ("wall time", f"{run['wall_s']:.3f} s"),
        ("CPU time (driver / workers)", f"{run['cpu_s']['driver']:.2f} s / {run['cpu_s']['workers']:.2f} s"),
        ("peak memory (driver)", f"{run['peak_memory_bytes']['driver'] / mib:,.0f} MiB"),
        ("rows read / kept", f"{run['rows_in']:,} / {run['rows_out']:,}"),
        ("rows per second", f"{run['rows_per_second'] or 0:,.0f}"),
        ("input files", f"{run['bytes_read']['input_files'] / mib:,.1f} MiB in {report['input']['partitions']} "
                        "partition(s)"),
        ("bytes read (driver / workers)",
         f"{run['bytes_read']['driver'] / mib:,.1f} MiB / {run['bytes_read']['workers'] / mib:,.1f} MiB"),
    ]
    increment = report.get("incremental")
    if increment:
        rows.append(("incremental", f"{increment['files_read']:,} file(s) read, {increment['files_reused']:,} reused "
                                    f"from the state, {increment['files_removed']:,} removed; state "
                                    f"{increment['state_bytes'] / mib:,.1f} MiB"))
    table = "<table>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>"
    if run["workers"]:
        table += ("<table><tr><th>Dask worker</th><th>CPU</th><th>peak memory</th><th>bytes read</th></tr>"
                  + "".join(f"<tr><td>{escape(address)}</td><td>{w['cpu_s']:.2f} s</td>"
                            f"<td>{w['peak_rss_bytes'] / mib:,.0f} MiB</td><td>{w['bytes_read'] / mib:,.1f} MiB</td></tr>"
                            for address, w in run["workers"].items())
                  + "</table>")
    note = (f"Where the time went: the {len(slowest)} slowest of {len(steps)} steps. Steps that only plan work on "
            "deferred frames take little time; the step that computes the reductions does the reading.")
    return _section("This run", escape(note), chart + table)


def _history_section(history: Sequence[Mapping], success_rate: float | None) -> str:
    from engine.observability.history import charted

    recent = [entry for entry in history if charted(entry)][-HISTORY_RUNS:]  # incomplete lines: rate only
    if not recent:
        return _section("Run history", "No run recorded.", "")
    labels = [_short_time(entry["started_at"]) for entry in recent]
    colours = [STATUS_COLOURS[entry["status"]] for entry in recent]
    chart = bar_chart("Duration of recent runs", labels, [entry["duration_s"] for entry in recent], colours,
                      fmt=lambda v: f"{v:.3g} s", height=220)
    failed = sum(1 for entry in recent if entry["status"] == "failed")
    interrupted = sum(1 for entry in recent if entry["status"] == "interrupted")
    rate = "–" if success_rate is None else f"{success_rate * 100:.1f} %"
    note = (f"Duration of the last {len(recent)} runs (green: success, red: failed, grey: interrupted; "
            f"{failed} failed, {interrupted} interrupted). "
            f"Success rate over the history window: {rate} (interrupted runs left out).")
    return _section("Run history", escape(note), chart)


def _short_time(text: str) -> str:
    try:
        return dt.datetime.fromisoformat(text).strftime("%m-%d %H:%M:%S")
    except ValueError:
        return text[:16]
