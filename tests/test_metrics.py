"""Run metrics, the run history and the Prometheus export, from real runs: real files,
a real LocalCluster for worker figures, a real Pushgateway process on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, run_cli, run_engine, wait_for_port
from engine.config import load_config
from engine.errors import ConfigurationError, InputDataError
from engine.observability.history import append_history, read_history, success_rate
from engine.sources.generate import generate_sales

STEP_KEYS = {"wall_s", "cpu_s", "driver_peak_rss_bytes", "driver_peak_increase_bytes", "bytes_read", "rows_in",
             "rows_out", "rows_per_second", "lazy"}


@pytest.fixture(scope="module")
def sales_csv(tmp_path_factory) -> Path:
    """20,000 generated rows with every reject reason."""
    path = tmp_path_factory.mktemp("metrics-data") / "sales.csv"
    generate_sales(path, 20_000, seed=11)
    return path


def _report(output: Path) -> dict:
    return json.loads((output / "run_report.json").read_text())


def _csv_rows(path: Path) -> int:
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _families(text: str) -> dict[str, list]:
    """Samples by metric name, parsed with prometheus_client's own parser."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(families: dict, name: str, **labels: str) -> float:
    matches = [s.value for s in families[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, families.get(name))
    return matches[0]


# --- run_report.json ----------------------------------------------------------------


def test_pandas_run_reports_step_and_run_metrics(sales_csv, tmp_path):
    rss_before = psutil.Process().memory_info().rss
    result = run_engine(sales_csv, tmp_path / "out")
    report = _report(tmp_path / "out")
    quality = result.results["data_quality_metrics"]
    raw, kept = quality["raw_record_count"], quality["cleaned_record_count"]

    # The keys other tools read are still there.
    assert report["mode"] == "pandas" and report["rows"]["raw"] == raw and report["input"]["partitions"] >= 1
    assert report["duration_s"] > 0 and set(report["step_seconds"]) == set(report["metrics"]["steps"])

    run = report["metrics"]["run"]
    assert run["rows_in"] == raw == 20_000 and run["rows_out"] == kept < raw
    assert run["rows_per_second"] == pytest.approx(raw / run["wall_s"], rel=0.01)
    assert run["cpu_s"]["driver"] > 0 and run["cpu_s"]["workers"] == 0 and run["workers"] == {}
    assert run["cpu_s"]["total"] == pytest.approx(run["cpu_s"]["driver"])
    # The driver is this process: its high-water mark covers what it held before the run
    # and cannot exceed the high-water mark measured now.
    import resource
    assert rss_before <= run["peak_memory_bytes"]["driver"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert run["bytes_read"]["input_files"] == sales_csv.stat().st_size
    assert run["bytes_read"]["driver"] >= sales_csv.stat().st_size  # the whole file went through read()

    steps = report["metrics"]["steps"]
    for name, step in steps.items():
        assert set(step) == STEP_KEYS, name
    assert steps["raw_sales_data"]["lazy"] and steps["raw_sales_data"]["rows_out"] == raw
    assert steps["raw_sales_data"]["rows_per_second"] is None  # a deferred frame has no throughput of its own
    assert steps["validated_sales"]["rows_in"] == raw == steps["validated_sales"]["rows_out"]
    reductions = steps["partition_summaries"]
    assert not reductions["lazy"] and reductions["rows_in"] == raw
    assert reductions["rows_per_second"] == pytest.approx(raw / reductions["wall_s"], rel=0.01)
    assert reductions["bytes_read"] >= sales_csv.stat().st_size  # the one pass reads the input here
    assert steps["weekly_aggregation"]["rows_out"] == _csv_rows(tmp_path / "out" / "weekly_aggregation.csv")
    assert steps["daily_sales_summary"]["rows_out"] == _csv_rows(tmp_path / "out" / "daily_sales_summary.csv")
    assert steps["top_performing_days"]["rows_out"] == 5
    assert sum(s["wall_s"] for s in steps.values()) <= run["wall_s"]
    peaks = [s["driver_peak_rss_bytes"] for s in steps.values()]
    assert peaks == sorted(peaks) and peaks[-1] <= run["peak_memory_bytes"]["driver"]  # a high-water mark only rises
    assert steps["partition_summaries"]["driver_peak_increase_bytes"] == (
        steps["partition_summaries"]["driver_peak_rss_bytes"] - peaks[list(steps).index("partition_summaries") - 1])


def test_distributed_run_measures_every_worker(sales_csv, tmp_path):
    run_engine(sales_csv, tmp_path / "out", mode="distributed", partition_size="64KiB", **{"cluster.workers": 2})
    report = _report(tmp_path / "out")
    run = report["metrics"]["run"]
    workers = run["workers"]
    assert len(workers) == 2 and all(address.startswith("tcp://127.0.0.1:") for address in workers)
    for address, worker in workers.items():
        assert worker["peak_rss_bytes"] >= worker["peak_rss_bytes_at_start"] > 0
        assert run["peak_memory_bytes"]["workers"][address] == worker["peak_rss_bytes"]
    assert run["peak_memory_bytes"]["workers_total"] == sum(w["peak_rss_bytes"] for w in workers.values())
    # The workers parsed the input: their CPU and their reads are counted, and the
    # file's bytes went through their read() calls (every partition once at least).
    assert run["cpu_s"]["workers"] == pytest.approx(sum(w["cpu_s"] for w in workers.values()), abs=0.01)
    assert run["cpu_s"]["workers"] > 0
    assert run["bytes_read"]["workers"] >= sales_csv.stat().st_size
    assert run["cpu_s"]["total"] == pytest.approx(run["cpu_s"]["driver"] + run["cpu_s"]["workers"], abs=0.01)
    reductions = report["metrics"]["steps"]["partition_summaries"]
    assert reductions["workers_cpu_s"] > 0 and reductions["workers_bytes_read"] >= sales_csv.stat().st_size
    assert reductions["workers_peak_rss_bytes"] <= run["peak_memory_bytes"]["workers_total"]
    assert report["input"]["partitions"] > 2


# --- the run history ----------------------------------------------------------------


def test_history_records_successes_and_failures_and_failures_keep_previous_outputs(sales_csv, tmp_path):
    out = tmp_path / "out"
    done = run_cli("run", str(sales_csv), "--output", str(out), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    kept = {name: (out / name).read_bytes() for name in ("report.html", "metrics.prom", "run_report.json")}

    done = run_cli("run", str(tmp_path / "missing.csv"), "--output", str(out), "--mode", "pandas")
    assert done.returncode == InputDataError.exit_code
    assert {name: (out / name).read_bytes() for name in kept} == kept  # the failed run changed none of them

    history = read_history(out / "run_history.jsonl")
    assert [(e["status"], e["exit_code"], e["error_kind"]) for e in history] == [
        ("success", 0, None), ("failed", InputDataError.exit_code, "InputDataError")]
    first, second = history
    assert first["rows"] == {"raw": 20_000, "cleaned": _report(out)["rows"]["cleaned"],
                             "rejected": _report(out)["rows"]["rejected"]}
    assert first["mode"] == "pandas" and first["duration_s"] >= _report(out)["duration_s"]
    assert first["run_id"] == _report(out)["run_id"] and second["rows"] is None
    assert success_rate(history) == 0.5


def test_fail_on_alert_is_a_failed_run_with_published_outputs(sales_csv, tmp_path):
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text("alerts:\n  max_null_count: 0\n  fail_on_alert: true\n")
    done = run_cli("run", str(sales_csv), "--output", str(out), "--config", str(config))
    assert done.returncode == 4
    (entry,) = read_history(out / "run_history.jsonl")
    assert (entry["status"], entry["exit_code"], entry["error_kind"]) == ("failed", 4, "QualityAlertError")
    assert entry["rows"]["raw"] == 20_000
    families = _families((out / "metrics.prom").read_text())
    assert _value(families, "engine_run_success") == 0 and _value(families, "engine_run_exit_code") == 4
    assert _value(families, "engine_runs_success_ratio") == 0
    assert "engine_run_last_success_timestamp_seconds" not in families


def test_history_path_is_configurable_and_the_success_rate_window_applies(sales_csv, tmp_path):
    history = tmp_path / "shared" / "history.jsonl"
    for i in range(3):
        append_history(history, {"run_id": f"old-{i}", "status": "failed", "duration_s": 1.0, "started_at": "x"})
    out = tmp_path / "out"
    run_engine(sales_csv, out, **{"metrics.history": str(history), "metrics.success_rate_window": 2})
    entries = read_history(history)
    assert [e["status"] for e in entries] == ["failed", "failed", "failed", "success"]
    assert not (out / "run_history.jsonl").exists()
    families = _families((out / "metrics.prom").read_text())
    assert _value(families, "engine_runs_success_ratio") == 0.5  # the last two: one failed, this one
    assert _value(families, "engine_runs_in_window") == 2


def test_success_rate_counts_readable_entries_only(tmp_path):
    path = tmp_path / "history.jsonl"
    assert read_history(path) == [] and success_rate([]) is None
    for status in ("success", "failed", "success", "success"):
        append_history(path, {"status": status})
    with open(path, "a") as handle:
        handle.write('{"status": "succ')  # a line cut short by a full disk
    entries = read_history(path)
    assert len(entries) == 4
    assert success_rate(entries) == 0.75 and success_rate(entries, window=2) == 1.0


def test_interrupted_runs_are_kept_in_the_history_and_left_out_of_the_success_rate(tmp_path):
    path = tmp_path / "history.jsonl"
    for status in ("success", "interrupted", "failed", "interrupted", "success", "stopped"):
        append_history(path, {"status": status})
    entries = read_history(path)  # an unknown status is not a history entry
    assert [e["status"] for e in entries] == ["success", "interrupted", "failed", "interrupted", "success"]
    assert success_rate(entries) == 2 / 3
    assert success_rate(entries, window=2) == 0.5  # the last two runs that finished: failed, success
    assert success_rate([{"status": "interrupted"}]) is None


_APPENDER = """
import sys
from pathlib import Path
from engine.observability.history import append_history
for i in range(int(sys.argv[3])):
    append_history(Path(sys.argv[1]), {"status": "success", "writer": int(sys.argv[2]), "i": i, "pad": "x" * 6000})
"""


def test_concurrent_processes_append_whole_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), str(w), "60"]) for w in range(3)]
    assert [process.wait(60) for process in writers] == [0, 0, 0]
    entries = read_history(path)
    assert len(entries) == 180 == len(path.read_text().splitlines())
    for w in range(3):
        assert [e["i"] for e in entries if e["writer"] == w] == list(range(60))


# --- Prometheus ---------------------------------------------------------------------


def test_textfile_parses_and_matches_the_run_report(sales_csv, tmp_path):
    out = tmp_path / "out"
    result = run_engine(sales_csv, out, **{"metrics.job": "nightly_sales"})
    report = _report(out)
    families = _families((out / "metrics.prom").read_text())
    assert all(s.labels["pipeline"] == "nightly_sales" for samples in families.values() for s in samples)
    assert _value(families, "engine_run_success") == 1
    assert _value(families, "engine_run_duration_seconds") == report["duration_s"]
    for stage, count in report["rows"].items():
        assert _value(families, "engine_run_rows", stage=stage) == count
    for reason, count in result.results["data_quality_metrics"]["rejected_by_reason"].items():
        assert _value(families, "engine_run_rejected_rows", reason=reason) == count
    assert _value(families, "engine_run_driver_peak_memory_bytes") == report["metrics"]["run"]["peak_memory_bytes"]["driver"]
    assert _value(families, "engine_run_cpu_seconds", process="driver") == report["metrics"]["run"]["cpu_s"]["driver"]
    assert _value(families, "engine_step_duration_seconds", step="partition_summaries") == \
        report["metrics"]["steps"]["partition_summaries"]["wall_s"]
    assert _value(families, "engine_runs_success_ratio") == 1
    assert _value(families, "engine_run_info", mode="pandas", run_id=report["run_id"]) == 1


def test_textfile_outside_the_output_is_replaced_only_by_published_runs(sales_csv, tmp_path):
    collector = tmp_path / "node-exporter"
    textfile = collector / "sales.prom"
    settings = {"metrics.prometheus_textfile": str(textfile)}
    run_engine(sales_csv, tmp_path / "out", **settings)
    first = textfile.read_text()
    assert _value(_families(first), "engine_run_success") == 1
    assert not (tmp_path / "out" / "metrics.prom").exists()
    with pytest.raises(InputDataError):
        run_engine(tmp_path / "missing.csv", tmp_path / "out", **settings)
    assert textfile.read_text() == first
    assert sorted(p.name for p in collector.iterdir()) == ["sales.prom"]  # no temporary file left
    # Not readable by other users, like every file the engine writes.
    assert textfile.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out" / "run_history.jsonl").stat().st_mode & 0o777 == 0o640


def test_textfile_off(sales_csv, tmp_path):
    run_engine(sales_csv, tmp_path / "out", **{"metrics.prometheus_textfile": "off", "metrics.html_report": False})
    assert not (tmp_path / "out" / "metrics.prom").exists() and not (tmp_path / "out" / "report.html").exists()
    assert (tmp_path / "out" / "run_history.jsonl").exists()


@pytest.fixture
def pushgateway(tmp_path):
    """A real Prometheus Pushgateway on 127.0.0.1 (Debian's prometheus-pushgateway), empty:
    its own persistence file, not Debian's default one that every earlier test run filled."""
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "prometheus-pushgateway is not installed (make test installs it)"
    port = free_port()
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}",
                                f"--persistence.file={tmp_path / 'pushgateway.data'}"], stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "pushgateway.log", "w"), start_new_session=True)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def _scrape(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        families = _families(response.read().decode())
    return {name: [s for s in samples if s.labels.get("job") == "sales_analytics"]
            for name, samples in families.items() if name.startswith("engine_")}


def test_runs_push_to_a_real_pushgateway(sales_csv, tmp_path, pushgateway):
    settings = {"metrics.pushgateway": pushgateway}
    run_engine(sales_csv, tmp_path / "out", **settings)
    report = _report(tmp_path / "out")
    pushed = _scrape(pushgateway)
    assert _value(pushed, "engine_run_success") == 1
    assert _value(pushed, "engine_run_rows", stage="raw") == 20_000
    assert _value(pushed, "engine_run_duration_seconds") == report["duration_s"]
    assert _value(pushed, "engine_step_duration_seconds", step="partition_summaries") == \
        report["metrics"]["steps"]["partition_summaries"]["wall_s"]

    with pytest.raises(InputDataError):
        run_engine(tmp_path / "missing.csv", tmp_path / "out", **settings)
    pushed = _scrape(pushgateway)
    assert _value(pushed, "engine_run_success") == 0
    assert _value(pushed, "engine_run_exit_code") == InputDataError.exit_code
    assert _value(pushed, "engine_runs_success_ratio") == 0.5
    assert "engine_run_last_failure_timestamp_seconds" in pushed
    # The failure replaced the status metrics only; the last published run's figures stay.
    assert _value(pushed, "engine_run_rows", stage="raw") == 20_000
    assert _value(pushed, "engine_run_last_success_timestamp_seconds") > 0


def test_an_interrupted_run_pushes_its_status_but_no_failure(sales_csv, tmp_path, pushgateway):
    import datetime as dt

    from engine.observability.run_monitor import RunMonitor

    out = tmp_path / "out"
    config = load_config(overrides={"metrics.pushgateway": pushgateway, "output": str(out)}, environ={})
    run_engine(sales_csv, out, **{"metrics.pushgateway": pushgateway})
    monitor = RunMonitor(config.metrics, out, "interrupted-run", dt.datetime.now(dt.timezone.utc))
    monitor.failed(KeyboardInterrupt(), "pandas")  # what a run stopped by Ctrl-C reports

    assert [e["status"] for e in read_history(out / "run_history.jsonl")] == ["success", "interrupted"]
    pushed = _scrape(pushgateway)
    assert _value(pushed, "engine_run_success") == 0 and _value(pushed, "engine_run_exit_code") == 130
    assert _value(pushed, "engine_runs_success_ratio") == 1 and _value(pushed, "engine_runs_in_window") == 1
    assert "engine_run_last_interrupted_timestamp_seconds" in pushed
    assert "engine_run_last_failure_timestamp_seconds" not in pushed


def test_an_unreachable_pushgateway_does_not_fail_the_run(sales_csv, tmp_path, caplog):
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_engine(sales_csv, tmp_path / "out", **{"metrics.pushgateway": closed, "metrics.push_timeout": 2})
    assert result.report["status"] == "success"
    assert any("not pushed to the Pushgateway" in r.getMessage() for r in caplog.records)
    assert read_history(tmp_path / "out" / "run_history.jsonl")[-1]["status"] == "success"


# --- configuration ------------------------------------------------------------------


def test_metrics_configuration_from_yaml_environment_and_overrides(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("metrics:\n  job: from_yaml\n  pushgateway: http://127.0.0.1:9091\n")
    config = load_config(str(config_file), environ={"ENGINE__METRICS__JOB": "from_env"})
    assert config.metrics.job == "from_env" and config.metrics.pushgateway == "http://127.0.0.1:9091"
    config = load_config(str(config_file), overrides={"metrics.job": "from_flag"},
                         environ={"ENGINE__METRICS__JOB": "from_env"})
    assert config.metrics.job == "from_flag"
    with pytest.raises(ConfigurationError, match="metrics.pushgateway: '127.0.0.1:9091' is not an http"):
        load_config(overrides={"metrics.pushgateway": "127.0.0.1:9091"}, environ={})
    with pytest.raises(ConfigurationError, match="metrics.success_rate_window: must be at least 1"):
        load_config(overrides={"metrics.success_rate_window": 0}, environ={})
    with pytest.raises(ConfigurationError, match="unknown key 'metrics.pushgatway'"):
        load_config(overrides={"metrics.pushgatway": "http://x"}, environ={})


def test_bad_metrics_configuration_is_one_line_exit_2(sales_csv, tmp_path):
    done = run_cli("run", str(sales_csv), "--output", str(tmp_path / "out"),
                   env={"ENGINE__METRICS__PUSH_TIMEOUT": "0"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: environment variable ENGINE__METRICS__PUSH_TIMEOUT: metrics.push_timeout: "
                                   "must be more than 0 seconds, got 0.0")
    assert not (tmp_path / "out").exists()
