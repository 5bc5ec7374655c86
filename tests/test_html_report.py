"""The HTML report of a real run, rendered by headless Chromium (Debian's `chromium`):
every chart must be drawn with a size and with exactly the data points of the run."""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_engine
from engine.errors import InputDataError
from engine.observability.history import append_history, history_entry
from engine.observability.html_report import STATUS_COLOURS
from engine.sources.generate import generate_sales

#: Appended to a copy of the report: measures what Chromium laid out for every chart.
MEASURE = """
<pre id="measured"></pre>
<script>
const charts = [...document.querySelectorAll("svg.chart")].map(svg => {
  const box = svg.getBoundingClientRect();
  let points = 0, drawn = 0;
  for (const mark of svg.querySelectorAll(".mark")) {
    const b = mark.getBoundingClientRect();
    const inside = b.right > box.left && b.left < box.right && b.bottom > box.top && b.top < box.bottom;
    const line = mark.tagName === "polyline";
    const visible = inside && (line ? (b.width > 0 || b.height > 0) : (b.width > 0 && b.height > 0));
    if (!visible) continue;
    drawn += 1;
    points += line ? mark.points.numberOfItems : 1;
  }
  return {label: svg.getAttribute("aria-label"), declared: Number(svg.dataset.marks),
          width: box.width, height: box.height, drawn, points};
});
document.getElementById("measured").textContent = JSON.stringify(charts);
</script>
"""


def rendered_charts(report: Path) -> list[dict]:
    """Every chart of `report` as Chromium laid it out: size, marks drawn, data points."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (make test installs it)"
    probe = report.with_name("measured-" + report.name)
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,3000",
                           "--user-data-dir=" + str(report.parent / ".chromium"), "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found and found.group(1), "the measuring script did not run"
    return json.loads(html.unescape(found.group(1)))


def problems(charts: list[dict]) -> list[str]:
    """What is wrong with the rendered charts: no size, no data point drawn, or fewer
    points drawn than the chart declares."""
    found = []
    for chart in charts:
        if chart["width"] <= 0 or chart["height"] <= 0:
            found.append(f"{chart['label']}: rendered with no size")
        if chart["drawn"] == 0 or chart["points"] == 0:
            found.append(f"{chart['label']}: no data point drawn")
        if chart["points"] != chart["declared"]:
            found.append(f"{chart['label']}: {chart['points']} points drawn, {chart['declared']} declared")
    return found


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    data = folder / "sales.csv"
    generate_sales(data, 20_000, seed=5)
    out = folder / "out"
    run_engine(data, out)
    result = run_engine(data, out)  # a second run: the history chart has two runs
    return out, result


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_chart_renders_with_the_runs_data(report_run):
    out, result = report_run
    charts = {chart["label"]: chart for chart in rendered_charts(out / "report.html")}
    assert problems(list(charts.values())) == []

    daily = _csv(out / "enriched_daily_summary.csv")
    weekly = _csv(out / "weekly_aggregation.csv")
    report = json.loads((out / "run_report.json").read_text())
    rejected = {r: n for r, n in result.results["data_quality_metrics"]["rejected_by_reason"].items() if n}
    expected = {
        "Daily sales total and its 7-day mean": 2 * len(daily),  # the daily line and the 7-day mean line
        "Sales total per ISO week": len(weekly),
        "Mean daily sales by day of the week": len({row["day_of_week"] for row in daily}),
        "Days with the highest sales": len(result.results["top_performing_days"]),
        "Rejected rows by reason": len(rejected),
        "Wall time of the slowest steps": min(12, len(report["metrics"]["steps"])),
        "Duration of recent runs": 2,
    }
    assert {label: chart["declared"] for label, chart in charts.items()} == expected
    assert len(rejected) == 6 and len(daily) > 1000 and len(weekly) > 100


def test_the_check_fails_for_a_chart_without_data_or_size(report_run, tmp_path):
    out, _ = report_run
    text = (out / "report.html").read_text(encoding="utf-8")
    # One chart's bars lose their size, another chart loses its line.
    broken = re.sub(r'(aria-label="Sales total per ISO week".*?</svg>)',
                    lambda m: re.sub(r'height="[0-9.]+" fill', 'height="0" fill', m.group(1)), text, count=1,
                    flags=re.DOTALL)
    broken = re.sub(r'<polyline class="mark"[^>]*points="[^"]*"/>', "", broken, count=2)
    broken = broken.replace('width="880" height="220" viewBox', 'width="0" height="0" viewBox', 1)
    (tmp_path / "report.html").write_text(broken, encoding="utf-8")
    found = problems(rendered_charts(tmp_path / "report.html"))
    assert any(p.startswith("Sales total per ISO week: no data point drawn") for p in found), found
    assert any(p.startswith("Daily sales total and its 7-day mean: no data point drawn") for p in found), found
    assert any(p.startswith("Duration of recent runs: rendered with no size") for p in found), found


def test_the_report_is_self_contained(report_run):
    out, _ = report_run
    text = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|\ssrc=|\shref=", text, re.IGNORECASE)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert len(re.findall(r'<svg class="chart"', text)) == 7
    assert "Success rate over the history window: 100.0 %" in text


def test_an_interrupted_run_is_shown_apart_and_left_out_of_the_success_rate(tmp_path):
    """History: a success, a run stopped by Ctrl-C (the line the engine writes for it), a
    failure, then this run: 2 successes of the 3 runs that finished."""
    data, out = tmp_path / "sales.csv", tmp_path / "out"
    generate_sales(data, 2_000, seed=3)
    run_engine(data, out)
    append_history(out / "run_history.jsonl", history_entry(
        "stopped-run", dt.datetime.now(dt.timezone.utc), "pandas", 0.5, None, KeyboardInterrupt()))
    with pytest.raises(InputDataError):
        run_engine(tmp_path / "missing.csv", out)
    run_engine(data, out)

    text = (out / "report.html").read_text(encoding="utf-8")
    history_chart = re.search(r'<svg class="chart"[^>]*aria-label="Duration of recent runs".*?</svg>', text,
                              re.DOTALL).group(0)
    assert re.findall(r'<rect class="mark"[^>]*fill="([^"]+)"', history_chart) == [
        STATUS_COLOURS[status] for status in ("success", "interrupted", "failed", "success")]
    assert "1 failed, 1 interrupted" in text
    assert "Success rate over the history window: 66.7 % (interrupted runs left out)" in text
    assert "<b>67 %</b><span>run success rate</span>" in text
    [chart] = [c for c in rendered_charts(out / "report.html") if c["label"] == "Duration of recent runs"]
    assert problems([chart]) == [] and chart["declared"] == 4
