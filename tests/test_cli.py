"""The command line as a user runs it: generate a dataset, run it in auto mode."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import PUBLISHED_FILES, engine_command, run_cli, write_csv


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


def test_version():
    from engine import __version__

    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"engine {__version__}\n"


def test_help_describes_every_option_a_newcomer_uses():
    assert "pandas: in process" in run_cli("run", "--help").stdout  # --mode
    generate_help = " ".join(run_cli("generate", "--help").stdout.split())
    assert "--rows N how many sales rows to write" in generate_help and ".parquet" in generate_help


def test_an_output_path_that_cannot_be_a_folder_is_a_usage_error(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "10.00", "C1")])
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (("--output", str(a_file)), f"error: {a_file}: cannot use as the output folder: it is a file, not a folder"),
        (("--output", str(a_file / "out")),
         f"error: {a_file / 'out'}: cannot create the output folder: {a_file} is a file, not a folder"),
        (("--output", str(a_file / "deeper" / "out")),
         f"error: {a_file / 'deeper' / 'out'}: cannot create the output folder: {a_file} is a file, not a folder"),
        (("--output", str(tmp_path / "out"), "--log-file", str(a_file / "run.log")),
         f"error: {a_file / 'run.log'}: cannot write the log file (Not a directory)"),
        (("--output", str(tmp_path / "out"), "--log-file", str(tmp_path)),
         f"error: {tmp_path}: cannot write the log file (Is a directory)"),
    ]
    for arguments, message in cases:
        done = run_cli("run", str(data), *arguments)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[-1] == message
        assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
    assert a_file.read_text() == "not a folder"


def test_a_failed_runs_log_ends_with_its_error_line(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "absent.csv"
    done = run_cli("run", str(missing), "--output", str(out))
    assert done.returncode == 3
    error_line = done.stderr.splitlines()[-1]
    assert error_line == f"error: {missing}: no such file or directory"
    assert (out / "pipeline.log").read_text().splitlines()[-1] == error_line
    json_log = tmp_path / "json.log"
    done = run_cli("run", str(missing), "--output", str(out), "--log-format", "json", "--log-file", str(json_log))
    assert done.returncode == 3
    last = json.loads(json_log.read_text().splitlines()[-1])
    assert last == json.loads(done.stderr.splitlines()[-1])
    assert last["message"] == f"error: {missing}: no such file or directory" and last["exit_code"] == 3


def test_an_unquoted_glob_gets_a_hint_to_quote_it(tmp_path):
    days = [write_csv(tmp_path / "data" / f"2024-0{day}.csv.gz", []) for day in (1, 2, 3)]
    done = run_cli("run", *map(str, days), "--mode", "dask")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line == (f"error: engine: unrecognized arguments: {days[1]} {days[2]} (engine run reads one INPUT; "
                    f"the shell expanded a glob into 3 files: quote the glob, e.g. "
                    f"engine run '{tmp_path / 'data'}/*.csv.gz', or give the folder)")
    other = run_cli("run", str(days[0]), "--frobnicate")
    assert other.returncode == 2
    assert other.stderr.splitlines() == ["error: engine: unrecognized arguments: --frobnicate"]


def test_generate_writes_the_form_its_name_says(tmp_path):
    import pyarrow.parquet as pq

    parquet = tmp_path / "sales.parquet"
    done = run_cli("generate", str(parquet), "--rows", "3000", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert pq.read_table(parquet).num_rows == 3000
    csv_file = tmp_path / "sales.csv"
    assert run_cli("generate", str(csv_file), "--rows", "3000", "--seed", "3").returncode == 0
    for source, out in ((parquet, "from-parquet"), (csv_file, "from-csv")):
        done = run_cli("run", str(source), "--output", str(tmp_path / out), "--mode", "pandas")
        assert done.returncode == 0, done.stderr
    for name in ("daily_sales_summary.csv", "weekly_aggregation.csv", "data_quality_metrics.json"):
        assert (tmp_path / "from-parquet" / name).read_bytes() == (tmp_path / "from-csv" / name).read_bytes()
    refused = run_cli("generate", str(tmp_path / "sales.json"), "--rows", "10")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: {tmp_path / 'sales.json'}: cannot tell which format to write from the name; "
        "end it with one of .csv, .csv.gz, .csv.zst, .csv.zstd, .parquet"]
    assert not (tmp_path / "sales.json").exists()
    under_a_file = run_cli("generate", str(csv_file / "more.csv"), "--rows", "10")
    assert under_a_file.returncode == 2
    assert under_a_file.stderr.splitlines() == [
        f"error: {csv_file / 'more.csv'}: cannot write the file: {csv_file} is a file, not a folder"]


def test_lineage_show_gives_row_counts_only_where_there_are_some(tmp_path):
    data = write_csv(tmp_path / "sales.csv", [("2024-01-01", "P1", "10.00", "C1"), ("2024-01-02", "P2", "5.00", "")])
    out = tmp_path / "out"
    assert run_cli("run", str(data), "--output", str(out), "--mode", "pandas").returncode == 0
    done = run_cli("lineage", "show", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "None" not in done.stdout
    assert f"file:{out.resolve()}/data_quality_metrics.json  (CREATE)" in done.stdout
    assert f"file:{out.resolve()}/daily_sales_summary.csv  (2 rows, CREATE)" in done.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`engine lineage show | head` as `yes | head`: exit 141 (SIGPIPE), nothing on stderr.
    The pipe's reading end is closed before the command starts, so its first write fails."""
    data = write_csv(tmp_path / "in.csv", [("2024-01-01", "P1", "1.00", "C1")])
    assert run_cli("run", str(data), "--output", str(tmp_path / "out")).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(engine_command("lineage", "show", "--output", str(tmp_path / "out")), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""
