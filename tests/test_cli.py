"""The command line as a user runs it: generate a dataset, run it in auto mode."""

from __future__ import annotations

import json

from conftest import PUBLISHED_FILES, run_cli


def test_generate_then_run_auto(tmp_path):
    data = tmp_path / "sales.csv"
    done = run_cli("generate", str(data), "--rows", "20000", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "20,000 rows" in done.stdout

    out = tmp_path / "out"
    done = run_cli("run", str(data), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "(pandas mode)" in done.stdout and str(out) in done.stdout
    assert "mode pandas (input" in done.stderr  # auto says what it chose and why
    for name in (*PUBLISHED_FILES, "run_report.json", "pipeline.log"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "run_report.json").read_text())
    assert report["mode"] == "pandas" and report["rows"]["raw"] == 20000
    assert set(report["step_seconds"]) >= {"raw_sales_data", "sales_reductions", "trend_analysis"}


def _generate_and_run(folder, rows: int, config_text: str):
    """`engine generate` then `engine run` with a configuration file."""
    data = folder / "sales.csv"
    assert run_cli("generate", str(data), "--rows", str(rows)).returncode == 0
    config = folder / "c.yaml"
    config.write_text(config_text)
    return run_cli("run", str(data), "--output", str(folder / "out"), "--config", str(config))


def test_auto_picks_dask_above_the_pandas_limit(tmp_path):
    done = _generate_and_run(tmp_path, 5000, "pandas_max_input: 10KiB\n")
    assert done.returncode == 0, done.stderr
    assert "mode dask (input" in done.stderr and "over the pandas limit" in done.stderr


def test_fail_on_alert_exits_4_after_writing_outputs(tmp_path):
    done = _generate_and_run(tmp_path, 3000, "alerts:\n  max_null_count: 0\n  fail_on_alert: true\n")
    assert done.returncode == 4
    assert "high_null_count" in done.stderr.strip().splitlines()[-1]
    assert (tmp_path / "out" / "data_quality_metrics.json").exists()


def test_generate_rejects_a_bad_row_count(tmp_path):
    done = run_cli("generate", str(tmp_path / "x.csv"), "--rows", "0")
    assert done.returncode == 2
    assert not (tmp_path / "x.csv").exists()
